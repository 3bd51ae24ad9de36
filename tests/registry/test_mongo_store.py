"""The ModelStore contract, run against both stores (LocalRegistry, MongoRegistry on a real server),
plus MongoDB-only behaviour: GridFS corruption, cold-cache workers, cache reuse, concurrent
activation and training history."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from bson import Binary
from pymongo import MongoClient

from registry.errors import IntegrityError, RegistryError, VersionNotFound
from registry.local import LocalRegistry
from registry.mongo import MongoRegistry
from registry.store import ModelStore, VersionInfo

pytestmark = pytest.mark.integration

NAME = "detector"

Register = Callable[..., VersionInfo]


@pytest.fixture(params=["local", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    """An empty store of each kind."""
    if request.param == "local":
        return LocalRegistry(tmp_path / "store")
    return MongoRegistry(request.getfixturevalue("mongo_db"))


@pytest.fixture
def mongo_store(mongo_db) -> MongoRegistry:
    return MongoRegistry(mongo_db)


def _content(version: str) -> bytes:
    return f"model bytes of {version} ".encode() * 50


@pytest.fixture
def register(tmp_path: Path) -> Register:
    """Factory: `register(store, version, created_ms, content=...)` writes an artifact and registers it."""
    made = 0

    def make(store: ModelStore, version: str, created_ms: int, content: bytes | None = None,
             **kw: object) -> VersionInfo:
        nonlocal made
        made += 1
        data = _content(version) if content is None else content
        path = tmp_path / "incoming" / f"artifact-{made}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        info = VersionInfo(name=NAME, version=version, sha256=hashlib.sha256(data).hexdigest(),
                           feature_schema_version="1", created_ms=created_ms, **kw)
        return store.register(info, path)

    return make


def _statuses(store: ModelStore) -> dict[str, str]:
    return {i.version: i.status for i in store.list(NAME)}


# --- the shared contract ---------------------------------------------------------------------


def test_implements_the_protocol(store: ModelStore) -> None:
    assert isinstance(store, ModelStore)


def test_register_then_get(store: ModelStore, register: Register) -> None:
    """A version reads back with its metadata (nested dicts included) and status 'registered'."""
    declared = register(store, "v1", 1_000, metrics={"macro_f1": 0.9, "per_class": {"dos": 0.8}},
                        data_fingerprint="abc", extra={"k": [1, 2], "note": "x"})
    got = store.get(NAME, "v1")
    assert got == declared
    assert got.status == "registered"
    assert got.metrics == {"macro_f1": 0.9, "per_class": {"dos": 0.8}}


def test_a_signature_is_kept_from_registration_or_set_later(store: ModelStore, register: Register) -> None:
    """Both stores keep a record's signature: given at registration, or set afterwards (`models sign`)."""
    from registry import record_problem, record_signature, signed

    secret = "store-test-secret-0123456789"
    first = register(store, "v1", 1_000)
    assert store.get(NAME, "v1").signature == "" and record_problem(first, secret)[0] == "unsigned_record"
    store.activate(NAME, "v1")
    got = store.set_signature(NAME, "v1", record_signature(first, secret))
    assert got.status == "active" and record_problem(store.get(NAME, "v1"), secret) is None
    second = register(store, "v2", 2_000, signature=signed(first, secret).signature)  # a copied signature
    assert record_problem(store.get(NAME, "v2"), secret)[0] == "bad_record_signature"
    assert record_problem(dataclasses.replace(second, signature=record_signature(second, secret)), secret) is None
    with pytest.raises(VersionNotFound):
        store.set_signature(NAME, "v9", "0" * 64)


def test_list_is_oldest_first(store: ModelStore, register: Register) -> None:
    """Ordered by created_ms, then version, whatever the registration order."""
    for version, created in (("b", 3_000), ("c", 1_000), ("a", 2_000), ("a2", 2_000)):
        register(store, version, created)
    assert [v.version for v in store.list(NAME)] == ["c", "a", "a2", "b"]
    assert store.list("nobody") == []


def test_unknown_versions_raise(store: ModelStore, register: Register, tmp_path: Path) -> None:
    """Every per-version operation raises VersionNotFound (carrying the names) for an unknown version."""
    register(store, "v1", 1)
    with pytest.raises(VersionNotFound) as exc:
        store.get(NAME, "v9")
    assert (exc.value.name, exc.value.version) == (NAME, "v9")
    with pytest.raises(VersionNotFound):
        store.get("other-model", "v1")
    with pytest.raises(VersionNotFound):
        store.activate(NAME, "v9")
    with pytest.raises(VersionNotFound):
        store.delete(NAME, "v9")
    with pytest.raises(VersionNotFound):
        store.fetch_artifact(NAME, "v9", tmp_path / "cache")
    assert store.active(NAME) is None


def test_invalid_names_are_refused(store: ModelStore, register: Register) -> None:
    with pytest.raises(RegistryError, match="invalid"):
        register(store, "../escape", 1)
    with pytest.raises(RegistryError, match="invalid"):
        store.get(NAME, "v 1")


def test_wrong_declared_sha256_raises(store: ModelStore, tmp_path: Path) -> None:
    """A declared sha256 that is not the file's: IntegrityError and nothing stored."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"real bytes")
    info = VersionInfo(name=NAME, version="v1", sha256=hashlib.sha256(b"other").hexdigest(),
                       feature_schema_version="1", created_ms=1)
    with pytest.raises(IntegrityError) as exc:
        store.register(info, path)
    assert (exc.value.name, exc.value.version) == (NAME, "v1")
    assert store.list(NAME) == []


def test_reregister_is_idempotent(store: ModelStore, register: Register) -> None:
    """The same bytes again: no change, the stored metadata wins; other bytes: RegistryError."""
    first = register(store, "v1", 5, content=b"same")
    again = register(store, "v1", 99, content=b"same", metrics={"new": 1})
    assert again == first
    assert store.list(NAME) == [first]
    with pytest.raises(RegistryError) as exc:
        register(store, "v1", 5, content=b"different")
    assert type(exc.value) is RegistryError


def test_activate_tracks_previous(store: ModelStore, register: Register) -> None:
    for i, v in enumerate(("v1", "v2", "v3")):
        register(store, v, i)
    assert store.active(NAME) is None
    activated = store.activate(NAME, "v1")
    assert (activated.version, activated.status) == ("v1", "active")
    assert _statuses(store) == {"v1": "active", "v2": "registered", "v3": "registered"}
    store.activate(NAME, "v2")
    assert store.active(NAME).version == "v2"
    assert _statuses(store) == {"v1": "previous", "v2": "active", "v3": "registered"}
    assert store.activate(NAME, "v2").status == "active"  # re-activating keeps previous
    assert store.get(NAME, "v1").status == "previous"
    store.activate(NAME, "v3")
    assert _statuses(store) == {"v1": "registered", "v2": "previous", "v3": "active"}


def test_rollback(store: ModelStore, register: Register) -> None:
    """Default: to previous (the active becomes previous); named: to that version."""
    for i, v in enumerate(("v1", "v2", "v3")):
        register(store, v, i)
    with pytest.raises(RegistryError):
        store.rollback(NAME)  # nothing active
    store.activate(NAME, "v1")
    with pytest.raises(RegistryError):
        store.rollback(NAME)  # no previous
    store.activate(NAME, "v2")
    back = store.rollback(NAME)
    assert (back.version, back.status) == ("v1", "active")
    assert _statuses(store) == {"v1": "active", "v2": "previous", "v3": "registered"}
    assert store.rollback(NAME).version == "v2"  # and forth again
    named = store.rollback(NAME, to="v3")
    assert (named.version, named.status) == ("v3", "active")
    assert _statuses(store) == {"v1": "registered", "v2": "previous", "v3": "active"}
    with pytest.raises(RegistryError):
        store.rollback(NAME, to="v3")  # already active
    with pytest.raises(VersionNotFound):
        store.rollback(NAME, to="v9")
    assert store.active(NAME).version == "v3"


def test_delete_refuses_active_and_previous(store: ModelStore, register: Register, tmp_path: Path) -> None:
    for i, v in enumerate(("v1", "v2", "v3")):
        register(store, v, i)
    store.activate(NAME, "v1")
    store.activate(NAME, "v2")
    for protected in ("v1", "v2"):
        with pytest.raises(RegistryError, match="refusing"):
            store.delete(NAME, protected)
    store.delete(NAME, "v3")
    assert [i.version for i in store.list(NAME)] == ["v1", "v2"]
    with pytest.raises(VersionNotFound):
        store.get(NAME, "v3")
    with pytest.raises(VersionNotFound):
        store.fetch_artifact(NAME, "v3", tmp_path / "cache")
    # A deleted version can be registered again (with other bytes, even).
    register(store, "v3", 3, content=b"reborn")
    assert store.fetch_artifact(NAME, "v3", tmp_path / "cache").read_bytes() == b"reborn"


def test_retention_keeps_newest_plus_active_and_previous(store: ModelStore, register: Register) -> None:
    for i in range(7):
        register(store, f"v{i}", 1_000 + i)
    store.activate(NAME, "v1")
    store.activate(NAME, "v3")  # v3 active, v1 previous
    gone = store.apply_retention(NAME, keep=2)
    assert gone == ["v0", "v2", "v4"]  # oldest first
    assert [i.version for i in store.list(NAME)] == ["v1", "v3", "v5", "v6"]
    assert store.apply_retention(NAME, keep=2) == []
    assert store.apply_retention(NAME, keep=0) == ["v5", "v6"]
    assert _statuses(store) == {"v1": "previous", "v3": "active"}
    with pytest.raises(RegistryError):
        store.apply_retention(NAME, keep=-1)


def test_fetch_artifact_is_identical_and_verified(store: ModelStore, register: Register, tmp_path: Path) -> None:
    data = os.urandom(300_000)  # more than one GridFS chunk (255 KiB)
    info = register(store, "v1", 1, content=data)
    path = store.fetch_artifact(NAME, "v1", tmp_path / "cache")
    assert path.read_bytes() == data
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    assert store.fetch_artifact(NAME, "v1", tmp_path / "cache") == path


# --- MongoDB only ----------------------------------------------------------------------------


def test_layout_in_mongodb(mongo_store: MongoRegistry, mongo_db, register: Register, tmp_path: Path) -> None:
    """Version documents carry the VersionInfo fields minus status; GridFS metadata names the version."""
    info = register(mongo_store, "v1", 1)
    mongo_store.activate(NAME, "v1")
    doc = mongo_db["model_versions"].find_one({"name": NAME, "version": "v1"})
    assert "status" not in doc and doc["sha256"] == info.sha256 and doc["created_ms"] == 1
    state = mongo_db["model_activation"].find_one({"_id": NAME})
    assert (state["active"], state["previous"]) == ("v1", None)
    (gfile,) = list(mongo_db["models.files"].find({"metadata.kind": "artifact"}))
    assert {k: gfile["metadata"][k] for k in ("name", "version", "sha256")} == {
        "name": NAME, "version": "v1", "sha256": info.sha256}
    assert "ml_training_history" in mongo_db.list_collection_names()
    MongoRegistry(mongo_db)  # creating the indexes again is harmless


def test_report_folder_goes_to_gridfs(mongo_store: MongoRegistry, tmp_path: Path) -> None:
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "report.md").write_text("# Evaluation\n")
    (report / "plots" / "roc.png").write_bytes(b"\x89PNGfake")
    art = tmp_path / "a.bin"
    art.write_bytes(b"model")
    info = VersionInfo(name=NAME, version="v1", sha256=hashlib.sha256(b"model").hexdigest(),
                       feature_schema_version="1", created_ms=1)
    mongo_store.register(info, art, report_dir=report)
    out = mongo_store.fetch_report(NAME, "v1", tmp_path / "out")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["plots/roc.png", "report.md"]
    assert (out / "plots" / "roc.png").read_bytes() == b"\x89PNGfake"
    mongo_store.delete(NAME, "v1")
    assert mongo_store.db["models.files"].count_documents({}) == 0
    assert mongo_store.db["models.chunks"].count_documents({}) == 0


def test_corrupted_gridfs_chunk_is_detected(mongo_store: MongoRegistry, mongo_db, register: Register,
                                            tmp_path: Path) -> None:
    """Bytes changed in GridFS (same length, so GridFS itself cannot tell): IntegrityError, nothing cached."""
    register(mongo_store, "v1", 1, content=b"A" * 1000)
    gfile = mongo_db["models.files"].find_one({"metadata.version": "v1", "metadata.kind": "artifact"})
    mongo_db["models.chunks"].update_one({"files_id": gfile["_id"], "n": 0}, {"$set": {"data": Binary(b"B" * 1000)}})
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError) as exc:
        mongo_store.fetch_artifact(NAME, "v1", cache)
    assert (exc.value.name, exc.value.version) == (NAME, "v1")
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no artifact, no temp file left behind

    # A truncated chunk (GridFS notices the length) is an IntegrityError too, not a raw GridFS error.
    mongo_db["models.chunks"].update_one({"files_id": gfile["_id"], "n": 0}, {"$set": {"data": Binary(b"A" * 10)}})
    with pytest.raises(IntegrityError):
        mongo_store.fetch_artifact(NAME, "v1", cache)


def test_worker_with_empty_disk_loads_the_active_version(mongo_db, register: Register, tmp_path: Path) -> None:
    """A trainer registers and activates; a fresh worker (own client object, empty cache) loads it from MongoDB."""
    trainer = MongoRegistry(mongo_db)
    register(trainer, "v1", 1)
    register(trainer, "v2", 2)
    trainer.activate(NAME, "v2")

    worker = MongoRegistry(mongo_db.client[mongo_db.name])
    cache = tmp_path / "worker-disk"
    assert not cache.exists()
    active = worker.active(NAME)
    path = worker.fetch_artifact(NAME, active.version, cache)
    assert path == cache / NAME / "v2" / "artifact.bin"
    assert path.read_bytes() == _content("v2")


def test_cached_copy_is_reused(mongo_store: MongoRegistry, mongo_db, register: Register, tmp_path: Path) -> None:
    """A verified cached copy is not downloaded again; a corrupt cached copy is replaced."""
    register(mongo_store, "v1", 1)
    cache = tmp_path / "cache"
    path = mongo_store.fetch_artifact(NAME, "v1", cache)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # a recognisable mtime
    inode = path.stat().st_ino
    # Even with GridFS gone, the cached copy is served: proof that nothing was downloaded.
    mongo_db["models.chunks"].delete_many({})
    again = mongo_store.fetch_artifact(NAME, "v1", cache)
    assert again == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (1_000_000_000, inode)

    register(mongo_store, "v2", 2)
    p2 = mongo_store.fetch_artifact(NAME, "v2", cache)
    p2.write_bytes(b"tampered")
    assert mongo_store.fetch_artifact(NAME, "v2", cache).read_bytes() == _content("v2")


def test_concurrent_activations_leave_a_consistent_state(mongo_db, mongo_uri: str, register: Register) -> None:
    """Two workers promoting different versions at once: active is one of them, previous the other."""
    setup = MongoRegistry(mongo_db)
    for i, v in enumerate(("v0", "v1", "v2")):
        register(setup, v, i)
    for round_ in range(6):
        if round_ > 0:  # round 0: no activation document yet, both workers race to create it
            setup.activate(NAME, "v0")
        # Each worker with its own client, like two processes.
        stores = [MongoRegistry(MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)[mongo_db.name])
                  for _ in range(2)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def promote(store: MongoRegistry, version: str, barrier: threading.Barrier = barrier,
                    errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait()
                store.activate(NAME, version)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=promote, args=(s, v)) for s, v in zip(stores, ("v1", "v2"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for s in stores:
            s.db.client.close()
        assert not errors
        state = mongo_db["model_activation"].find_one({"_id": NAME})
        assert state["active"] in ("v1", "v2")
        other = "v2" if state["active"] == "v1" else "v1"
        # On MongoDB the compare-and-swap serialises the two (previous == other); FerretDB v1 does not run
        # findAndModify in a transaction, so there the last writer may win over the same earlier state.
        assert state["previous"] in (other, "v0" if round_ > 0 else None)
        statuses = _statuses(setup)
        assert list(statuses.values()).count("active") == 1
        assert list(statuses.values()).count("previous") == 1


def test_concurrent_registration_of_one_version(mongo_db, mongo_uri: str, tmp_path: Path) -> None:
    """Two workers registering the same bytes at once: one version document, one artifact in GridFS."""
    data = b"shared model bytes" * 100
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    info = VersionInfo(name=NAME, version="v1", sha256=hashlib.sha256(data).hexdigest(),
                       feature_schema_version="1", created_ms=1)
    clients = [MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000) for _ in range(2)]
    stores = [MongoRegistry(c[mongo_db.name]) for c in clients]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def reg(store: MongoRegistry) -> None:
        barrier.wait()
        try:
            results.append(store.register(info, path))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=reg, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in clients:
        c.close()
    assert all(isinstance(r, VersionInfo) and r.sha256 == info.sha256 for r in results), results
    assert mongo_db["model_versions"].count_documents({"name": NAME}) == 1
    assert mongo_db["models.files"].count_documents({"metadata.kind": "artifact"}) == 1
    assert MongoRegistry(mongo_db).fetch_artifact(NAME, "v1", tmp_path / "cache").read_bytes() == data


def test_training_history_round_trip(mongo_store: MongoRegistry) -> None:
    mongo_store.record_training(NAME, "v1", {"macro_f1": 0.91}, "fp1", 1_000)
    mongo_store.record_training(NAME, "v3", {"macro_f1": 0.95}, "fp3", 3_000, extra={"rows": 10})
    mongo_store.record_training(NAME, "v2", {"macro_f1": 0.93}, "fp2", 2_000)
    mongo_store.record_training("other", "v1", {}, "x", 5_000)
    history = mongo_store.training_history(NAME)
    assert [h["version"] for h in history] == ["v3", "v2", "v1"]
    assert history[0] == {"name": NAME, "version": "v3", "metrics": {"macro_f1": 0.95}, "data_fingerprint": "fp3",
                          "trained_at_ms": 3_000, "extra": {"rows": 10}}
    assert history[2]["extra"] == {}
    assert mongo_store.training_history("nobody") == []


def test_driver_errors_become_registry_errors(mongo_store: MongoRegistry, register: Register,
                                              tmp_path: Path) -> None:
    """A document MongoDB cannot encode is a RegistryError naming the version, not a raw bson/pymongo error."""
    with pytest.raises(RegistryError) as exc:
        register(mongo_store, "v1", 1, metrics={"bad": object()})
    assert (exc.value.name, exc.value.version) == (NAME, "v1")
    assert mongo_store.list(NAME) == []
    assert mongo_store.db["models.files"].count_documents({}) == 0  # the upload was rolled back
