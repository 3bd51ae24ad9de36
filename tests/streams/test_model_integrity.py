"""A worker loads only model versions whose registry record is signed with its secret.

Whoever can write the registry (a directory, a MongoDB database) but lacks the secret plants a
pickle that runs code when loaded. Promote, rollback, challenger and start-up must all refuse it
before one byte is unpickled, and the serving model must keep serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import time
from pathlib import Path

import pytest

from registry import LocalRegistry, VersionInfo, record_signature
from streams.control import Command, sign
from tests.conftest import SIGNING_SECRET
from tests.streams.conftest import metric_sum, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration
NAME = "streamguard"


class _Plant:
    """Unpickling this creates the marker file: it stands for any code an attacker's pickle runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(reg_dir: Path, good: VersionInfo, marker: Path, tmp_path: Path) -> dict[str, str]:
    """Three versions whose artifact is the planted pickle; the reason each must be refused with."""
    reg = LocalRegistry(reg_dir)
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(_Plant(marker)))
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    base = dict(name=NAME, sha256=sha, feature_schema_version=good.feature_schema_version, created_ms=good.created_ms)
    # 1. a record with no signature
    reg.register(VersionInfo(version="evil-unsigned", **base), evil)
    # 2. a record carrying a signature copied from a genuine record
    reg.register(VersionInfo(version="evil-copied", signature=good.signature, **base), evil)
    # 3. a genuine, signed version whose artifact and sha256 are then replaced together
    genuine = tmp_path / "genuine.bin"
    shutil.copyfile(reg.artifact_path(NAME, good.version), genuine)
    signed_copy = dataclasses.replace(good, version="evil-swapped", status="registered")
    reg.register(dataclasses.replace(signed_copy, signature=record_signature(signed_copy, SIGNING_SECRET)), genuine)
    folder = reg_dir / NAME / "versions" / "evil-swapped"
    shutil.copyfile(evil, folder / "artifact.bin")
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"] = sha
    (folder / "meta.json").write_text(json.dumps(meta))
    return {"evil-unsigned": "unsigned_record", "evil-copied": "bad_record_signature",
            "evil-swapped": "bad_record_signature"}


def test_a_planted_model_is_never_unpickled_and_the_serving_model_keeps_serving(
        kafka_bootstrap: str, start_worker, model_registry: Path, tmp_path: Path) -> None:
    reg_dir = tmp_path / "registry"
    shutil.copytree(model_registry, reg_dir)
    reg = LocalRegistry(reg_dir)
    good = reg.active(NAME)
    assert good.signature  # `streamguard train` signed it
    marker = tmp_path / "the-attacker-ran-code"
    planted = _plant(reg_dir, good, marker, tmp_path)

    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    w = start_worker(app_id, prefix, registry_dir=reg_dir)
    # Signed commands (an operator fooled into naming the version, or a record changed after the
    # CLI looked): each load path once. The worker must refuse all three from the record alone.
    now_ms = int(time.time() * 1000)
    commands = [Command(op="promote", version="evil-unsigned"), Command(op="rollback", version="evil-copied"),
                Command(op="challenger", version="evil-swapped", fraction=0.5)]
    produce(kafka_bootstrap, f"{prefix}ops.control",
            [(b"control", sign(c, SIGNING_SECRET, app_id=app_id, now_ms=now_ms).model_dump_json().encode())
             for c in commands])

    def refused() -> bool:
        m = w.metrics()
        return (metric_sum(m, "streamguard_model_refused_total", reason="unsigned_record") >= 1
                and metric_sum(m, "streamguard_model_refused_total", reason="bad_record_signature") >= 2)

    wait_for(refused, 120, "the three planted versions refused", w.log_tail)
    m = w.metrics()
    assert metric_sum(m, "streamguard_model_refused_total") == 3
    health = json.loads(w.get("/health")[1])
    assert health["model"]["version"] == good.version and health["challenger"] is None
    assert not marker.exists(), "a planted pickle was unpickled"

    # Start-up: the attacker also makes a planted version active. A new worker refuses to start.
    for version, reason in planted.items():
        reg.activate(NAME, version)
        late = start_worker(app_id + "-late", unique_prefix(), registry_dir=reg_dir, ready=False)
        deadline = time.monotonic() + 180
        while late.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert late.proc.poll() not in (None, 0), f"a worker started on {version}"
        assert reason in late.log_tail(), late.log_tail()
    assert not marker.exists(), "a planted pickle was unpickled at start-up"
    assert json.loads(w.get("/health")[1])["model"]["version"] == good.version
