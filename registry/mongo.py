"""MongoDB model store: artifacts in GridFS, metadata and activation state in collections.

Layout in the database handed to `MongoRegistry`:

- GridFS bucket `<bucket>` (default `models`): one file per artifact, metadata
  `{name, version, sha256, kind: "artifact", upload_id}`, and one file per file of a
  version's report folder, metadata `{name, version, kind: "report", path, upload_id}`.
- `model_versions`: one document per (name, version) (unique index) holding the fields of
  `VersionInfo` except `status` (derived, as in `LocalRegistry`), plus `artifact_id` (the
  GridFS file) and `upload_id` (the registration attempt that owns the GridFS files).
- `model_activation`: `{_id: name, active: v, previous: p, rev: n}` per model, changed only
  by a compare-and-swap on `rev` with `find_one_and_update`, so concurrent activations
  serialise (on MongoDB; see `_transition` for FerretDB v1) and never leave a half-written state.
- `ml_training_history`: one document per training run (`record_training`).

The version document is the commit point of a registration: GridFS files are uploaded
first and the document inserted last, so a crash leaves at most unreferenced files, never a
version without its artifact. Errors of pymongo/GridFS are raised as `RegistryError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, BinaryIO

import gridfs
from bson.errors import BSONError
from gridfs.errors import CorruptGridFile, NoFile
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from scoring.digest import sha256_file

from .errors import IntegrityError, RegistryError, VersionNotFound
from .store import _SAFE, VersionInfo, apply_retention

__all__ = ["MongoRegistry"]

VERSIONS = "model_versions"
ACTIVATION = "model_activation"
TRAINING_HISTORY = "ml_training_history"

_ARTIFACT = "artifact.bin"
_FIELDS = tuple(f.name for f in fields(VersionInfo))
_CAS_ATTEMPTS = 100
_READ_SIZE = 1 << 20


@contextlib.contextmanager
def _wrapped(what: str, name: str | None = None, version: str | None = None) -> Iterator[None]:
    """Raise driver errors (and unencodable documents) as `RegistryError`."""
    try:
        yield
    except RegistryError:
        raise
    except (PyMongoError, BSONError) as exc:
        where = f" {name}" + (f" {version}" if version else "") if name else ""
        raise RegistryError(f"MongoDB registry: {what}{where} failed: {exc}", name=name, version=version) from exc


class _HashingReader:
    """A read-only file wrapper hashing what passes through (what GridFS uploads is what we hashed)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.sha256.update(data)
        return data


class MongoRegistry:
    """Model versions in MongoDB (or a MongoDB-protocol server such as FerretDB)."""

    def __init__(self, db: Database, *, bucket: str = "models") -> None:
        self.db = db
        self.bucket_name = bucket
        self._fs = gridfs.GridFSBucket(db, bucket_name=bucket)
        self._versions = db[VERSIONS]
        self._activation = db[ACTIVATION]
        self._history = db[TRAINING_HISTORY]
        self._files = db[f"{bucket}.files"]
        with _wrapped("creating indexes"):
            # Plain ascending/descending and unique indexes only: FerretDB v1 supports these
            # (it lacks TTL, partial and some other index options, none of which are needed here).
            self._versions.create_index([("name", ASCENDING), ("version", ASCENDING)],
                                        unique=True, name="name_version_unique")
            self._files.create_index([("metadata.name", ASCENDING), ("metadata.version", ASCENDING)],
                                     name="metadata_name_version")
            self._history.create_index([("name", ASCENDING), ("trained_at_ms", DESCENDING)],
                                       name="name_trained_at")

    # --- validation and conversion -----------------------------------------------------------

    @staticmethod
    def _check(name: str, version: str | None = None) -> None:
        checks = [("model name", name)] + ([("version", version)] if version is not None else [])
        for what, value in checks:
            if not isinstance(value, str) or not _SAFE.fullmatch(value):
                raise RegistryError(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only",
                                    name=name, version=version)

    @staticmethod
    def _status(version: str, state: dict[str, Any] | None) -> str:
        state = state or {}
        if state.get("active") == version:
            return "active"
        return "previous" if state.get("previous") == version else "registered"

    def _info(self, doc: dict[str, Any], state: dict[str, Any] | None) -> VersionInfo:
        values = {k: doc[k] for k in _FIELDS if k in doc and k != "status"}
        return VersionInfo(**values, status=self._status(doc["version"], state))

    def _state(self, name: str) -> dict[str, Any] | None:
        return self._activation.find_one({"_id": name})

    def _doc(self, name: str, version: str) -> dict[str, Any]:
        doc = self._versions.find_one({"name": name, "version": version})
        if doc is None:
            raise VersionNotFound(f"no version {version!r} of model {name!r} in MongoDB database {self.db.name!r}",
                                  name=name, version=version)
        return doc

    # --- ModelStore ---------------------------------------------------------------------------

    def register(self, info: VersionInfo, artifact: Path, report_dir: Path | None = None) -> VersionInfo:
        """Upload an artifact and record its metadata; the sha256 must match the file.

        Idempotent for the same (name, version, sha256); the same version with other bytes
        raises `RegistryError`.
        """
        name, version = info.name, info.version
        self._check(name, version)
        artifact = Path(artifact)
        actual = sha256_file(artifact)
        if actual != info.sha256:
            raise IntegrityError(f"artifact sha256 {actual} != declared {info.sha256}", name=name, version=version)
        with _wrapped("register", name, version):
            existing = self._versions.find_one({"name": name, "version": version})
            if existing is not None:
                return self._same_or_conflict(existing, info)
            upload_id = uuid.uuid4().hex
            try:
                artifact_id = self._upload(info, artifact, upload_id)
                if report_dir is not None and Path(report_dir).is_dir():
                    self._upload_report(name, version, Path(report_dir), upload_id)
                doc = {k: v for k, v in asdict(info).items() if k != "status"}
                doc.update(artifact_id=artifact_id, upload_id=upload_id)
                self._versions.insert_one(doc)
            except DuplicateKeyError:
                # Another worker registered this version between our check and our insert.
                self._drop_upload(upload_id)
                return self._same_or_conflict(self._doc(name, version), info)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._drop_upload(upload_id)
                raise
        return info

    def _same_or_conflict(self, existing: dict[str, Any], info: VersionInfo) -> VersionInfo:
        if existing.get("sha256") != info.sha256:
            raise RegistryError(f"version {info.version} already registered with other bytes",
                                name=info.name, version=info.version)
        return self._info(existing, self._state(info.name))

    def _upload(self, info: VersionInfo, artifact: Path, upload_id: str) -> Any:
        meta = {"name": info.name, "version": info.version, "sha256": info.sha256,
                "kind": "artifact", "upload_id": upload_id}
        with open(artifact, "rb") as fh:
            reader = _HashingReader(fh)
            file_id = self._fs.upload_from_stream(f"{info.name}/{info.version}/{_ARTIFACT}", reader, metadata=meta)
        if reader.sha256.hexdigest() != info.sha256:  # the file changed after it was checked
            self._drop_upload(upload_id)
            raise IntegrityError(f"artifact {artifact} changed while uploading (sha256 mismatch)",
                                 name=info.name, version=info.version)
        return file_id

    def _upload_report(self, name: str, version: str, report_dir: Path, upload_id: str) -> None:
        for path in sorted(p for p in report_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(report_dir).as_posix()
            meta = {"name": name, "version": version, "kind": "report", "path": rel, "upload_id": upload_id}
            with open(path, "rb") as fh:
                self._fs.upload_from_stream(f"{name}/{version}/report/{rel}", fh, metadata=meta)

    def _drop_upload(self, upload_id: str) -> None:
        for f in list(self._files.find({"metadata.upload_id": upload_id}, {"_id": 1})):
            with contextlib.suppress(NoFile):
                self._fs.delete(f["_id"])

    def get(self, name: str, version: str) -> VersionInfo:
        """One version; raises `VersionNotFound`."""
        self._check(name, version)
        with _wrapped("get", name, version):
            return self._info(self._doc(name, version), self._state(name))

    def list(self, name: str) -> list[VersionInfo]:
        """Every version of a model, oldest first (by created_ms, then version)."""
        self._check(name)
        with _wrapped("list", name):
            state = self._state(name)
            infos = [self._info(d, state) for d in self._versions.find({"name": name})]
        return sorted(infos, key=lambda i: (i.created_ms, i.version))

    def active(self, name: str) -> VersionInfo | None:
        """The active version, or None if the model has none."""
        self._check(name)
        with _wrapped("active", name):
            state = self._state(name)
            version = (state or {}).get("active")
            return self._info(self._doc(name, version), state) if version else None

    def activate(self, name: str, version: str) -> VersionInfo:
        """Make a version active; the one it replaces becomes `previous`."""
        self._check(name, version)

        def step(state: dict[str, Any]) -> tuple[str, str | None] | None:
            if state.get("active") == version:
                return None  # already active: nothing changes, as in LocalRegistry
            return version, state.get("active")

        with _wrapped("activate", name, version):
            self._doc(name, version)  # VersionNotFound before touching the activation state
            self._transition(name, step)
            return self.get(name, version)

    def rollback(self, name: str, to: str | None = None) -> VersionInfo:
        """Activate `to`, or the previous version (the active one becomes previous)."""
        self._check(name, to)
        chosen: list[str] = []

        def step(state: dict[str, Any]) -> tuple[str, str | None]:
            target = to or state.get("previous")
            if not target:
                raise RegistryError(f"model {name!r} has no previous version to roll back to", name=name)
            if target == state.get("active"):
                raise RegistryError(f"{target} is already the active version of {name!r}", name=name, version=target)
            self._doc(name, target)  # VersionNotFound for an unknown target
            chosen[:] = [target]
            return target, state.get("active")

        with _wrapped("rollback", name, to):
            self._transition(name, step)
            return self.get(name, chosen[0])

    def _transition(self, name: str, step: Callable[[dict[str, Any]], tuple[str, str | None] | None]) -> None:
        """Apply `step(state) -> (active, previous)` to the activation document by compare-and-swap.

        `rev` increases with every change; an update only matches the revision it was computed
        from, so of two concurrent writers one wins and the other recomputes from the new state.

        FerretDB v1 (SQLite backend) does not run findAndModify in a transaction (FerretDB issue
        #3040): its filter is checked before the write, so two writers that read the same revision
        may both succeed and the last one wins. Each write still sets `active` and `previous`
        together, so the document is always one writer's complete result, never a half state.
        Creating the document is strict on both servers (the duplicate `_id` makes the loser retry).
        """
        for _ in range(_CAS_ATTEMPTS):
            state = self._state(name) or {}
            change = step(state)
            if change is None:
                return
            active, previous = change
            rev = state.get("rev", 0)
            try:
                # No document yet (rev 0): the upsert creates it; a concurrent creator makes it fail
                # with a duplicate _id, and we retry against the document that now exists.
                done = self._activation.find_one_and_update(
                    {"_id": name, "rev": rev},
                    {"$set": {"active": active, "previous": previous}, "$inc": {"rev": 1}},
                    upsert=(rev == 0), return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            if done is not None:
                return
        raise RegistryError(f"activation state of {name!r} kept changing; gave up after {_CAS_ATTEMPTS} attempts",
                            name=name)

    def delete(self, name: str, version: str) -> None:
        """Remove a version and its GridFS files; the active and the previous one are refused."""
        self._check(name, version)
        with _wrapped("delete", name, version):
            self._doc(name, version)
            status = self._status(version, self._state(name))
            if status in ("active", "previous"):
                raise RegistryError(f"refusing to delete the {status} version {version} of {name!r}",
                                    name=name, version=version)
            # The document first: from then on the version is gone, whatever happens to the files.
            self._versions.delete_one({"name": name, "version": version})
            for f in list(self._files.find({"metadata.name": name, "metadata.version": version}, {"_id": 1})):
                with contextlib.suppress(NoFile):
                    self._fs.delete(f["_id"])

    def apply_retention(self, name: str, keep: int) -> list[str]:
        """Delete all but the `keep` newest versions, never the active or previous; returns what went, oldest first."""
        return apply_retention(self, name, keep)

    def set_signature(self, name: str, version: str, signature: str) -> VersionInfo:
        """Record a version's signature on its document."""
        self._check(name, version)
        with _wrapped("set_signature", name, version):
            if self._versions.update_one({"name": name, "version": version},
                                         {"$set": {"signature": signature}}).matched_count != 1:
                raise VersionNotFound(f"no version {version!r} of model {name!r} in MongoDB database "
                                      f"{self.db.name!r}", name=name, version=version)
            return self._info(self._doc(name, version), self._state(name))

    def fetch_artifact(self, name: str, version: str, cache_dir: Path) -> Path:
        """`cache_dir/<name>/<version>/artifact.bin`, downloaded from GridFS unless a verified copy is there."""
        self._check(name, version)
        with _wrapped("fetch_artifact", name, version):
            doc = self._doc(name, version)
            expected = doc["sha256"]
            dest = Path(cache_dir) / name / version / _ARTIFACT
            if dest.is_file() and sha256_file(dest) == expected:
                return dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{_ARTIFACT}.", suffix=".tmp")
            tmp = Path(tmp_name)
            try:
                h = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    try:
                        with self._fs.open_download_stream(doc["artifact_id"]) as stream:
                            for chunk in iter(lambda: stream.read(_READ_SIZE), b""):
                                h.update(chunk)
                                out.write(chunk)
                    except NoFile as exc:
                        raise IntegrityError(f"artifact of {name} {version} is missing from GridFS",
                                             name=name, version=version) from exc
                    except CorruptGridFile as exc:
                        raise IntegrityError(f"artifact of {name} {version} is corrupt in GridFS: {exc}",
                                             name=name, version=version) from exc
                    out.flush()
                    os.fsync(out.fileno())
                if h.hexdigest() != expected:
                    raise IntegrityError(f"artifact of {name} {version} is corrupt (sha256 {h.hexdigest()} "
                                         f"!= recorded {expected})", name=name, version=version)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return dest

    # --- beyond ModelStore: reports and training history ----------------------------------------

    def fetch_report(self, name: str, version: str, dest_dir: Path) -> Path | None:
        """Download a version's report folder into `dest_dir`; None if it was registered without one."""
        self._check(name, version)
        with _wrapped("fetch_report", name, version):
            doc = self._doc(name, version)
            files = list(self._files.find({"metadata.upload_id": doc.get("upload_id"), "metadata.kind": "report"}))
            if not files:
                return None
            dest_dir = Path(dest_dir)
            for f in files:
                rel = Path(f["metadata"]["path"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise IntegrityError(f"report path {rel} escapes the report folder", name=name, version=version)
                target = dest_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    self._fs.download_to_stream(f["_id"], out)
            return dest_dir

    def record_training(self, name: str, version: str, metrics: dict, data_fingerprint: str,
                        trained_at_ms: int, extra: dict | None = None) -> None:
        """Append one training run to `ml_training_history`."""
        self._check(name, version)
        with _wrapped("record_training", name, version):
            self._history.insert_one({"name": name, "version": version, "metrics": dict(metrics),
                                      "data_fingerprint": data_fingerprint, "trained_at_ms": int(trained_at_ms),
                                      "extra": dict(extra or {})})

    def training_history(self, name: str) -> list[dict]:
        """The training runs of a model, newest first (by trained_at_ms, then insertion)."""
        self._check(name)
        with _wrapped("training_history", name):
            docs = list(self._history.find({"name": name}).sort([("trained_at_ms", DESCENDING), ("_id", DESCENDING)]))
        for d in docs:
            d.pop("_id", None)
        return docs
