"""`retrain-worker --require-approval`: a version that passes the gate is registered, not promoted."""

from __future__ import annotations

import shutil
from pathlib import Path

from registry import LocalRegistry
from streams.retrain import RetrainOptions, RetrainWorker
from streams.settings import Settings
from tests.conftest import SIGNING_SECRET


def test_a_passing_version_waits_for_an_operator(model_registry: Path, tmp_path: Path) -> None:
    reg_dir = tmp_path / "registry"
    shutil.copytree(model_registry, reg_dir)
    reg = LocalRegistry(reg_dir)
    champion = reg.active("streamguard").version
    s = Settings(registry_dir=reg_dir, signing_secret=SIGNING_SECRET, kafka_bootstrap="127.0.0.1:1")
    worker = RetrainWorker(s, RetrainOptions(seeds_per_run=1, duration_s=60, eval_seeds=(100,), max_regression=1.0,
                                             require_approval=True, live=False))
    out = worker.retrain("operator", "approval test")  # no announcement: the broker above does not exist
    assert out["outcome"] == "awaiting_approval", out
    assert f"streamguard control promote {out['version']}" in out["detail"]
    assert reg.active("streamguard").version == champion
    info = reg.get("streamguard", out["version"])
    assert info.extra["gate"]["passed"] and info.extra["gate"]["approval"] == "required"
    samples = {s.labels["outcome"]: s.value for m in worker.metrics.registry.collect() for s in m.samples
               if s.name == "streamguard_retrain_runs_total"}
    assert samples == {"awaiting_approval": 1.0}
