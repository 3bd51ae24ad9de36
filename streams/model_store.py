"""Which model store a process uses, and loading a verified version from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from features.extract import FEATURE_SCHEMA_VERSION

from .errors import SettingsError, StreamsError

if TYPE_CHECKING:
    from registry import ModelStore, VersionInfo
    from scoring.bundle import ModelBundle
    from scoring.train import TrainingResult

    from .settings import Settings

__all__ = ["ModelRefused", "artifact_cache", "checked_record", "describe_store", "load_version", "open_store",
           "register_trained", "sign_version"]


class ModelRefused(StreamsError):
    """A model version that must not be served; `reason` is a short code for metrics."""

    def __init__(self, reason: str, detail: str, *, version: str) -> None:
        super().__init__(f"model version {version} refused ({reason}): {detail}")
        self.reason = reason
        self.version = version


def open_store(s: Settings) -> ModelStore:
    """The store `STREAMGUARD_REGISTRY_STORE` names: the local directory or MongoDB (GridFS)."""
    from registry import LocalRegistry, MongoRegistry

    if s.registry_store == "local":
        return LocalRegistry(s.registry_dir)
    if s.mongo_uri is None:
        raise SettingsError("STREAMGUARD_REGISTRY_STORE=mongo needs STREAMGUARD_MONGO_URI")
    from .mongo import connect_mongo

    client = connect_mongo(s.mongo_uri.get_secret_value())
    return MongoRegistry(client[s.mongo_database])


def describe_store(s: Settings) -> str:
    """Where models live, for messages (no secrets)."""
    if s.registry_store == "local":
        return f"the local registry {s.registry_dir}"
    return f"MongoDB database {s.mongo_database!r}"


def artifact_cache(s: Settings) -> Path:
    """Where artifacts fetched from a remote store are kept (verified again on every load)."""
    return s.data_dir / "models"


def checked_record(store: ModelStore, name: str, version: str, *, secret: str) -> VersionInfo:
    """The store's record of a version if it is readable, its own and signed with `secret`; `ModelRefused` otherwise."""
    from registry import RegistryError, record_problem

    try:
        info = store.get(name, version)
    except RegistryError as exc:
        raise ModelRefused("unknown_version", str(exc), version=version) from None
    except (TypeError, ValueError) as exc:  # a record someone wrote by hand: not a VersionInfo
        raise ModelRefused("bad_record", f"unreadable registry record: {exc}", version=version) from None
    if (info.name, info.version) != (name, version):
        raise ModelRefused("bad_record", f"the record read for {name} {version} names {info.name} {info.version}",
                           version=version)
    problem = record_problem(info, secret)
    if problem is not None:
        raise ModelRefused(problem[0], problem[1], version=version)
    return info


def sign_version(store: ModelStore, name: str, version: str, cache_dir: Path, *, secret: str) -> VersionInfo:
    """Sign a version's record with `secret` once its artifact hashes to the recorded sha256 (this vouches for it)."""
    from registry import record_signature

    info = store.get(name, version)
    store.fetch_artifact(name, version, cache_dir)  # raises IntegrityError on other bytes
    return store.set_signature(name, version, record_signature(info, secret))


def load_version(store: ModelStore, name: str, version: str, cache_dir: Path, *, secret: str,
                 expected_sha256: str | None = None) -> ModelBundle:
    """Fetch, verify (record signature, sha256, feature schema, conformance) and load one registered version.

    The store's record must be signed with `secret` (registry/signature.py): whoever can write the
    store but does not hold the secret cannot make a worker unpickle their bytes. `expected_sha256`
    (from a signed announcement) must match the record too.
    """
    from registry import IntegrityError, RegistryError
    from scoring.bundle import load_bundle
    from scoring.conformance import check_bundle
    from scoring.errors import BundleError, ConformanceError

    info = checked_record(store, name, version, secret=secret)
    if expected_sha256 is not None and info.sha256 != expected_sha256:
        raise ModelRefused("sha256_mismatch", f"announced sha256 {expected_sha256[:12]}…, the registry holds "
                           f"{info.sha256[:12]}…", version=version)
    if info.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ModelRefused("schema_mismatch", f"feature schema {info.feature_schema_version}, this worker computes "
                           f"{FEATURE_SCHEMA_VERSION}", version=version)
    try:
        path = store.fetch_artifact(name, version, cache_dir)
    except IntegrityError as exc:
        raise ModelRefused("sha256_mismatch", str(exc), version=version) from None
    except RegistryError as exc:
        raise ModelRefused("unloadable", str(exc), version=version) from None
    try:
        bundle = load_bundle(path, info.sha256)
    except BundleError as exc:
        reason = "sha256_mismatch" if "sha256" in str(exc) else "unloadable"
        raise ModelRefused(reason, str(exc), version=version) from None
    try:
        check_bundle(bundle)
    except ConformanceError as exc:
        raise ModelRefused("conformance", str(exc), version=version) from None
    return bundle


def register_trained(store: ModelStore, result: TrainingResult, *, name: str, feature_set: str, secret: str,
                     extra: dict | None = None, description: dict | None = None) -> VersionInfo:
    """Register a training result (artifact, report, metadata, signed with `secret`) and, in MongoDB, its history."""
    from registry import VersionInfo, signed

    b = result.bundle
    record = VersionInfo(name=name, version=b.version, sha256=result.sha256,
                         feature_schema_version=b.feature_schema_version, created_ms=b.metadata["trained_at_ms"],
                         metrics=b.metadata["metrics"], data_fingerprint=b.metadata["data_fingerprint"],
                         extra={"conformance": result.conformance, "feature_set": feature_set, **(extra or {})})
    info = store.register(signed(record, secret), result.artifact, result.report.parent)
    if hasattr(store, "record_training"):  # MongoDB keeps every training run in ml_training_history
        store.record_training(name, b.version, b.metadata["metrics"], b.metadata["data_fingerprint"],
                              b.metadata["trained_at_ms"], {**(description or {}), **(extra or {})})
    return info
