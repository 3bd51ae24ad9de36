"""LocalRegistry: registration with integrity checks, listing, activation and rollback bookkeeping."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from registry.errors import IntegrityError, RegistryError, VersionNotFound
from registry.local import LocalRegistry
from registry.store import VersionInfo

NAME = "detector"

Artifact = Callable[..., tuple[Path, str]]
Info = Callable[..., VersionInfo]


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    """An empty registry in a private directory."""
    return LocalRegistry(tmp_path / "store")


@pytest.fixture
def artifact(tmp_path: Path) -> Artifact:
    """Factory: `artifact(content=b"...")` writes a file outside the store and returns it with its sha256."""
    made = 0

    def make(content: bytes = b"model bytes v1") -> tuple[Path, str]:
        nonlocal made
        made += 1
        path = tmp_path / "incoming" / f"artifact-{made}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path, hashlib.sha256(content).hexdigest()

    return make


@pytest.fixture
def info() -> Info:
    """Factory: `info(version, sha256, created_ms=...)` a VersionInfo of the test model."""

    def make(version: str, sha256: str, created_ms: int = 1_000, **kw: object) -> VersionInfo:
        return VersionInfo(name=NAME, version=version, sha256=sha256, feature_schema_version="1",
                           created_ms=created_ms, **kw)

    return make


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    """A small report folder with a nested file."""
    d = tmp_path / "report-src"
    (d / "plots").mkdir(parents=True)
    (d / "report.md").write_text("# Evaluation\nmacro-F1 0.97\n")
    (d / "report.json").write_text(json.dumps({"macro_f1": 0.97}))
    (d / "plots" / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return d


def register(reg: LocalRegistry, artifact: Artifact, info: Info, version: str, created_ms: int,
             content: bytes | None = None) -> VersionInfo:
    path, sha = artifact(content if content is not None else f"bytes of {version}".encode())
    return reg.register(info(version, sha, created_ms=created_ms), path)


# --- register / get / list -------------------------------------------------------------------


def test_register_then_get(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """A registered version reads back with the same metadata and status 'registered'."""
    path, sha = artifact()
    declared = info("v1", sha, metrics={"macro_f1": 0.9}, data_fingerprint="abc", extra={"k": [1, 2]})
    returned = registry.register(declared, path)
    assert returned == declared
    got = registry.get(NAME, "v1")
    assert got == declared
    assert got.status == "registered"
    assert registry.artifact_path(NAME, "v1").read_bytes() == path.read_bytes()


def test_register_copies_the_artifact(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """The store keeps its own copy: deleting the source does not affect it."""
    path, sha = artifact(b"original")
    registry.register(info("v1", sha), path)
    path.unlink()
    stored = registry.artifact_path(NAME, "v1")
    assert stored.read_bytes() == b"original"
    assert registry.root in stored.parents


def test_list_is_oldest_first(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """list returns every version ordered by creation time, whatever the registration order."""
    for version, created in (("b", 3_000), ("c", 1_000), ("a", 2_000)):
        register(registry, artifact, info, version, created)
    assert [v.version for v in registry.list(NAME)] == ["c", "a", "b"]
    assert [v.created_ms for v in registry.list(NAME)] == [1_000, 2_000, 3_000]


def test_list_of_unknown_model_is_empty(registry: LocalRegistry) -> None:
    """A model with no versions lists nothing (no error)."""
    assert registry.list("nobody") == []


def test_get_unknown_version_raises(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """get of an unknown version (or model) raises VersionNotFound carrying both names."""
    register(registry, artifact, info, "v1", 1)
    with pytest.raises(VersionNotFound) as exc:
        registry.get(NAME, "v9")
    assert (exc.value.name, exc.value.version) == (NAME, "v9")
    with pytest.raises(VersionNotFound):
        registry.get("other-model", "v1")
    assert issubclass(VersionNotFound, RegistryError)


def test_register_with_wrong_sha256_raises(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """A declared sha256 that is not the file's is refused and nothing is stored."""
    path, sha = artifact()
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError) as exc:
        registry.register(info("v1", wrong), path)
    assert exc.value.version == "v1"
    with pytest.raises(VersionNotFound):
        registry.get(NAME, "v1")
    assert registry.list(NAME) == []


def test_reregister_same_bytes_is_a_noop(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """Registering the same version with the same bytes again changes nothing."""
    path, sha = artifact(b"same")
    first = registry.register(info("v1", sha, created_ms=5), path)
    meta = registry.root / NAME / "versions" / "v1" / "meta.json"
    before = meta.read_text()
    again_path, again_sha = artifact(b"same")
    again = registry.register(info("v1", again_sha, created_ms=99, metrics={"new": 1}), again_path)
    assert again == first  # the stored metadata wins
    assert meta.read_text() == before
    assert [v.version for v in registry.list(NAME)] == ["v1"]


def test_reregister_other_bytes_raises(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """The same version with other (correctly declared) bytes is a RegistryError, not an integrity one."""
    register(registry, artifact, info, "v1", 1, content=b"first")
    path, sha = artifact(b"second")
    with pytest.raises(RegistryError) as exc:
        registry.register(info("v1", sha), path)
    assert type(exc.value) is RegistryError
    assert registry.artifact_path(NAME, "v1").read_bytes() == b"first"


def test_report_folder_is_copied(registry: LocalRegistry, artifact: Artifact, info: Info, report_dir: Path) -> None:
    """The report folder travels with the version, nested files included."""
    path, sha = artifact()
    registry.register(info("v1", sha), path, report_dir=report_dir)
    stored = registry.report_dir(NAME, "v1")
    assert stored != report_dir
    files = sorted(p.relative_to(stored).as_posix() for p in stored.rglob("*") if p.is_file())
    assert files == ["plots/roc.png", "report.json", "report.md"]
    for rel in files:
        assert (stored / rel).read_bytes() == (report_dir / rel).read_bytes()


def test_no_report_folder_without_report(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """A version registered without a report has no report folder."""
    register(registry, artifact, info, "v1", 1)
    assert not registry.report_dir(NAME, "v1").exists()


def test_registration_leaves_no_staging_or_tmp_files(registry: LocalRegistry, artifact: Artifact, info: Info,
                                                     report_dir: Path) -> None:
    """After a registration only the final version folder exists."""
    path, sha = artifact()
    registry.register(info("v1", sha), path, report_dir=report_dir)
    versions = registry.root / NAME / "versions"
    assert [d.name for d in versions.iterdir()] == ["v1"]
    assert not list(registry.root.rglob("*.tmp"))
    assert sorted(p.name for p in (versions / "v1").iterdir()) == ["artifact.bin", "meta.json", "report"]


# --- activation ------------------------------------------------------------------------------


def test_active_is_none_before_activation(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """No version is active until one is activated, even with versions registered."""
    assert registry.active(NAME) is None
    register(registry, artifact, info, "v1", 1)
    assert registry.active(NAME) is None


def test_activate_tracks_previous(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """Activating a version makes it 'active' and the one it replaces 'previous'."""
    for i, v in enumerate(("v1", "v2", "v3")):
        register(registry, artifact, info, v, i)

    activated = registry.activate(NAME, "v1")
    assert activated.version == "v1" and activated.status == "active"
    assert {v.version: v.status for v in registry.list(NAME)} == {"v1": "active", "v2": "registered",
                                                                   "v3": "registered"}

    registry.activate(NAME, "v2")
    assert registry.active(NAME).version == "v2"
    assert {v.version: v.status for v in registry.list(NAME)} == {"v1": "previous", "v2": "active",
                                                                   "v3": "registered"}
    assert registry.get(NAME, "v1").status == "previous"

    registry.activate(NAME, "v3")
    assert {v.version: v.status for v in registry.list(NAME)} == {"v1": "registered", "v2": "previous",
                                                                   "v3": "active"}


def test_rollback_swaps_active_and_previous(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """Re-activating the previous version makes the replaced one previous."""
    register(registry, artifact, info, "v1", 1)
    register(registry, artifact, info, "v2", 2)
    registry.activate(NAME, "v1")
    registry.activate(NAME, "v2")
    registry.activate(NAME, "v1")
    assert registry.active(NAME).version == "v1"
    assert registry.get(NAME, "v2").status == "previous"


def test_activating_the_active_version_keeps_previous(registry: LocalRegistry, artifact: Artifact,
                                                      info: Info) -> None:
    """Activating the version that is already active does not lose the previous one."""
    register(registry, artifact, info, "v1", 1)
    register(registry, artifact, info, "v2", 2)
    registry.activate(NAME, "v1")
    registry.activate(NAME, "v2")
    again = registry.activate(NAME, "v2")
    assert again.status == "active"
    assert registry.get(NAME, "v1").status == "previous"


def test_activate_unknown_version_raises(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """Only registered versions can be activated; a failed activation changes nothing."""
    register(registry, artifact, info, "v1", 1)
    registry.activate(NAME, "v1")
    with pytest.raises(VersionNotFound):
        registry.activate(NAME, "v2")
    assert registry.active(NAME).version == "v1"


def test_registries_on_the_same_root_agree(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """State lives on disk: a second instance sees the same versions and activation."""
    register(registry, artifact, info, "v1", 1)
    registry.activate(NAME, "v1")
    other = LocalRegistry(registry.root)
    assert other.active(NAME) == registry.active(NAME)
    assert other.list(NAME) == registry.list(NAME)


# --- integrity of stored artifacts -----------------------------------------------------------


def test_artifact_path_detects_a_flipped_byte(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """A stored artifact whose bytes changed is refused with IntegrityError."""
    register(registry, artifact, info, "v1", 1, content=bytes(range(256)) * 8)
    stored = registry.artifact_path(NAME, "v1")
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as exc:
        registry.artifact_path(NAME, "v1")
    assert (exc.value.name, exc.value.version) == (NAME, "v1")
    # Without verification the path is still handed out (for forensics).
    assert registry.artifact_path(NAME, "v1", verify=False) == stored


def test_artifact_path_detects_truncation(registry: LocalRegistry, artifact: Artifact, info: Info) -> None:
    """A truncated stored artifact is refused with IntegrityError."""
    register(registry, artifact, info, "v1", 1, content=b"x" * 4096)
    stored = registry.artifact_path(NAME, "v1")
    stored.write_bytes(stored.read_bytes()[:100])
    with pytest.raises(IntegrityError):
        registry.artifact_path(NAME, "v1")


def test_artifact_path_of_unknown_version_raises(registry: LocalRegistry) -> None:
    """artifact_path of a version that does not exist raises VersionNotFound."""
    with pytest.raises(VersionNotFound):
        registry.artifact_path(NAME, "v1")


def test_crash_leftover_staging_folder_is_not_listed(registry: LocalRegistry, artifact: Artifact,
                                                     info: Info) -> None:
    """A staging folder left by an interrupted registration is not a registered version."""
    register(registry, artifact, info, "v1", 1)
    staging = registry.root / NAME / "versions" / "v2.staging"
    staging.mkdir()
    path, sha = artifact(b"half written")
    (staging / "artifact.bin").write_bytes(path.read_bytes())
    (staging / "meta.json").write_text(json.dumps(asdict(info("v2", sha, created_ms=2))))
    assert [v.version for v in registry.list(NAME)] == ["v1"]


def _register_n(reg, tmp_path, n: int, name: str = "m"):
    from registry.store import VersionInfo
    from scoring.bundle import sha256_file

    versions = []
    for i in range(n):
        art = tmp_path / f"a{i}.bin"
        art.write_bytes(f"artifact {i}".encode())
        info = VersionInfo(name=name, version=f"v{i}", sha256=sha256_file(art), feature_schema_version="1", created_ms=1000 + i)
        reg.register(info, art)
        versions.append(info.version)
    return versions


def test_rollback_delete_and_retention(tmp_path) -> None:
    from registry.errors import RegistryError
    from registry.local import LocalRegistry

    reg = LocalRegistry(tmp_path / "reg")
    _register_n(reg, tmp_path, 6)
    with pytest.raises(RegistryError, match="no previous"):
        reg.rollback("m")
    reg.activate("m", "v1")
    reg.activate("m", "v4")
    assert reg.rollback("m").version == "v1"
    assert {i.version: i.status for i in reg.list("m")}["v4"] == "previous"
    assert reg.rollback("m", to="v5").version == "v5"
    assert reg.active("m").version == "v5" and reg.get("m", "v1").status == "previous"
    for protected in ("v5", "v1"):
        with pytest.raises(RegistryError, match="refusing"):
            reg.delete("m", protected)
    reg.delete("m", "v0")
    assert [i.version for i in reg.list("m")] == ["v1", "v2", "v3", "v4", "v5"]
    gone = reg.apply_retention("m", keep=1)
    assert gone == ["v2", "v3", "v4"]
    assert [i.version for i in reg.list("m")] == ["v1", "v5"]
    assert reg.fetch_artifact("m", "v5", tmp_path).read_bytes() == b"artifact 5"
