"""The interface every model store implements (local directory, MongoDB) and the metadata of a version."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import RegistryError

__all__ = ["ModelStore", "VersionInfo", "apply_retention"]

# Model names and versions every store accepts (they become folder names and GridFS metadata).
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class VersionInfo:
    """Metadata of one registered version."""

    name: str
    version: str
    sha256: str
    feature_schema_version: str
    created_ms: int
    status: str = "registered"  # registered | active | previous | retired
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    signature: str = ""  # HMAC of the record (registry/signature.py); empty: unsigned


def apply_retention(store: ModelStore, name: str, keep: int) -> list[str]:
    """Delete all but the `keep` newest versions of a store, never the active or previous; returns what went."""
    if keep < 0:
        raise RegistryError(f"retention must keep >= 0 versions, got {keep}", name=name)
    infos = store.list(name)  # oldest first
    newest = {i.version for i in infos[len(infos) - keep:]} if keep else set()
    doomed = [i.version for i in infos if i.version not in newest and i.status not in ("active", "previous")]
    for version in doomed:
        store.delete(name, version)
    return doomed


@runtime_checkable
class ModelStore(Protocol):
    """Model versions: register, inspect, activate, roll back, prune, and fetch verified artifacts.

    Statuses: `active` (served), `previous` (what `rollback` returns to), `registered`.
    """

    def register(self, info: VersionInfo, artifact: Path, report_dir: Path | None = None) -> VersionInfo:
        """Store an artifact whose sha256 must equal `info.sha256`; idempotent for the same bytes."""

    def get(self, name: str, version: str) -> VersionInfo:
        """One version; raises `VersionNotFound`."""

    def list(self, name: str) -> list[VersionInfo]:
        """Every version of a model, oldest first."""

    def activate(self, name: str, version: str) -> VersionInfo:
        """Promote a version to active; the one it replaces becomes `previous`."""

    def active(self, name: str) -> VersionInfo | None:
        """The active version, or None."""

    def rollback(self, name: str, to: str | None = None) -> VersionInfo:
        """Activate `to`, or the previous version; raises `RegistryError` if there is none."""

    def delete(self, name: str, version: str) -> None:
        """Remove a version; refuses the active and the previous one."""

    def apply_retention(self, name: str, keep: int) -> list[str]:
        """Delete all but the `keep` newest versions, never the active or previous; returns what went."""

    def fetch_artifact(self, name: str, version: str, cache_dir: Path) -> Path:
        """A local path to the version's artifact, its sha256 verified."""

    def set_signature(self, name: str, version: str, signature: str) -> VersionInfo:
        """Record a version's signature (`registry.signature`); the record otherwise unchanged."""
