"""Local directory model store (the embedded default).

Layout: `<root>/<name>/versions/<version>/{artifact.bin, meta.json, report/}` and
`<root>/<name>/active.json` naming the active and the previous version. Writes go through
a temporary file and an atomic rename, so a crash never leaves a half-written version active.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scoring.digest import sha256_file

from .errors import IntegrityError, RegistryError, VersionNotFound
from .store import _SAFE, VersionInfo, apply_retention

__all__ = ["LocalRegistry"]

_ARTIFACT = "artifact.bin"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class LocalRegistry:
    """Model versions in a directory tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str, version: str) -> Path:
        for what, value in (("model name", name), ("version", version)):
            if not _SAFE.fullmatch(value or ""):
                raise RegistryError(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only",
                                    name=name, version=version)
        return self.root / name / "versions" / version

    def register(self, info: VersionInfo, artifact: Path, report_dir: Path | None = None) -> VersionInfo:
        """Copy an artifact in and record its metadata; the sha256 must match the file."""
        actual = sha256_file(artifact)
        if actual != info.sha256:
            raise IntegrityError(f"artifact sha256 {actual} != declared {info.sha256}",
                                 name=info.name, version=info.version)
        dest = self._dir(info.name, info.version)
        if (dest / "meta.json").exists():
            existing = self.get(info.name, info.version)
            if existing.sha256 != info.sha256:
                raise RegistryError(f"version {info.version} already registered with other bytes",
                                    name=info.name, version=info.version)
            return existing
        staging = dest.with_name(dest.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copyfile(artifact, staging / _ARTIFACT)
        if report_dir is not None and report_dir.is_dir():
            shutil.copytree(report_dir, staging / "report")
        _write_json(staging / "meta.json", asdict(info))
        os.replace(staging, dest)
        return info

    def get(self, name: str, version: str) -> VersionInfo:
        meta = self._dir(name, version) / "meta.json"
        if not meta.exists():
            raise VersionNotFound(f"no version {version!r} of model {name!r} in {self.root}",
                                  name=name, version=version)
        info = VersionInfo(**json.loads(meta.read_text()))
        return self._with_status(info)

    def _with_status(self, info: VersionInfo) -> VersionInfo:
        state = self._active_state(info.name)
        status = "active" if state.get("active") == info.version else (
            "previous" if state.get("previous") == info.version else "registered")
        return VersionInfo(**{**asdict(info), "status": status})

    def list(self, name: str) -> list[VersionInfo]:
        """Every version of a model, oldest first."""
        base = self.root / name / "versions"
        if not base.is_dir():
            return []
        # A "<version>.staging" folder is a registration a crash interrupted: not a version.
        infos = [self.get(name, d.name) for d in base.iterdir()
                 if (d / "meta.json").exists() and not d.name.endswith((".staging", ".deleting"))]
        return sorted(infos, key=lambda i: (i.created_ms, i.version))

    def _active_state(self, name: str) -> dict[str, Any]:
        path = self.root / name / "active.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def activate(self, name: str, version: str) -> VersionInfo:
        """Make a version active; the one it replaces becomes `previous`."""
        info = self.get(name, version)
        state = self._active_state(name)
        if state.get("active") != version:
            _write_json(self.root / name / "active.json", {"active": version, "previous": state.get("active")})
        return self.get(name, info.version)

    def active(self, name: str) -> VersionInfo | None:
        """The active version, or None if the model has none."""
        version = self._active_state(name).get("active")
        return self.get(name, version) if version else None

    def rollback(self, name: str, to: str | None = None) -> VersionInfo:
        """Activate `to`, or the previous version (the active one becomes previous)."""
        state = self._active_state(name)
        target = to or state.get("previous")
        if not target:
            raise RegistryError(f"model {name!r} has no previous version to roll back to", name=name)
        if target == state.get("active"):
            raise RegistryError(f"{target} is already the active version of {name!r}", name=name, version=target)
        return self.activate(name, target)

    def delete(self, name: str, version: str) -> None:
        """Remove a version; the active and the previous one are refused."""
        info = self.get(name, version)
        if info.status in ("active", "previous"):
            raise RegistryError(f"refusing to delete the {info.status} version {version} of {name!r}",
                                name=name, version=version)
        doomed = self._dir(name, version)
        # Rename first, so a crash mid-delete never leaves a half version that `list` shows.
        trash = doomed.with_name(doomed.name + ".deleting")
        os.replace(doomed, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def apply_retention(self, name: str, keep: int) -> list[str]:
        """Delete all but the `keep` newest versions, never the active or previous; returns what went."""
        return apply_retention(self, name, keep)

    def set_signature(self, name: str, version: str, signature: str) -> VersionInfo:
        """Record a version's signature in its meta.json (atomic rename)."""
        meta = self._dir(name, version) / "meta.json"
        info = dataclasses.replace(self.get(name, version), signature=signature)
        _write_json(meta, {**asdict(info), "status": "registered"})
        return self._with_status(info)

    def fetch_artifact(self, name: str, version: str, cache_dir: Path) -> Path:
        """The artifact in place (a local store needs no cache), its sha256 verified."""
        return self.artifact_path(name, version, verify=True)

    def artifact_path(self, name: str, version: str, *, verify: bool = True) -> Path:
        """Path of a version's artifact, its sha256 checked against the metadata first."""
        info = self.get(name, version)
        path = self._dir(name, version) / _ARTIFACT
        if verify and sha256_file(path) != info.sha256:
            raise IntegrityError(f"artifact of {name} {version} is corrupt (sha256 mismatch)",
                                 name=name, version=version)
        return path

    def report_dir(self, name: str, version: str) -> Path:
        return self._dir(name, version) / "report"
