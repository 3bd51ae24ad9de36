"""Drift to retrain to published version: a real worker, a real retrain worker, a real broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from registry import LocalRegistry
from streams.control import Verifier
from tests.conftest import SIGNING_SECRET
from tests.streams.conftest import BIN, drain, free_port, metric_sum, unique_prefix, wait_for, wait_pipeline_idle

pytestmark = pytest.mark.integration

SECRET = SIGNING_SECRET  # the secret the session model is signed with


def _simulate(env: dict, start: datetime, *args: str) -> None:
    # Paced, as live traffic is: when a backlog is read as fast as possible, the partitions of
    # logs.raw and flows.raw are read at different paces and a window's mix of kinds is skewed.
    proc = subprocess.run([str(BIN), "simulate", "--start", start.isoformat(), *args],
                          env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()


def test_drift_requests_a_retrain_and_the_gated_version_is_published(
        kafka_bootstrap: str, start_worker, model_registry: Path, tmp_path: Path) -> None:
    reg_dir = tmp_path / "registry"
    shutil.copytree(model_registry, reg_dir)
    reg = LocalRegistry(reg_dir)
    old = reg.active("streamguard").version
    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    w = start_worker(app_id, prefix, registry_dir=reg_dir, signing_secret=SECRET, drift_window_events=1000,
                     drift_psi_threshold=0.3)
    env = {**os.environ, **{k: v for k, v in w.env.items() if k.startswith("STREAMGUARD_")}}
    env["STREAMGUARD_METRICS_PORT"] = str(free_port())
    log = tmp_path / "retrain-worker.log"
    rw = subprocess.Popen([str(BIN), "retrain-worker", "--seeds-per-run", "1", "--duration", "150",
                           "--eval-seeds", "100", "--max-regression", "1.0"], env=env,
                          stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "waiting for retrain requests" in log.read_text(), 120, "the retrain worker to listen",
                 log.read_text)
        t0 = datetime.now(UTC).replace(microsecond=0)

        # Traffic like the training data: PSI measured, below the threshold, no request.
        _simulate(env, t0, "--duration", "60", "--seed", "5")
        wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 180, w.log_tail)
        m = w.metrics()
        normal_psi = metric_sum(m, "streamguard_drift_psi")
        top = sorted(((v, dict(k[1])["feature"]) for k, v in m.items() if k[0] == "streamguard_feature_psi"),
                     reverse=True)[:6]
        assert 0 < normal_psi < 0.3, (normal_psi, top)
        assert metric_sum(m, "streamguard_retrain_requests_total") == 0
        assert len([k for k in m if k[0] == "streamguard_feature_psi"]) > 20

        # The same network under a heavy attack mix: the distribution shifts, one request goes out.
        _simulate(env, t0 + timedelta(seconds=60), "--duration", "20", "--seed", "8", "--intensity", "20")
        wait_for(lambda: metric_sum(w.metrics(), "streamguard_retrain_requests_total", reason="drift") >= 1, 240,
                 "a drift retrain request", w.log_tail)
        shifted_psi = metric_sum(w.metrics(), "streamguard_drift_psi")
        assert shifted_psi >= 0.3
        # The metric counts the request before it is on the topic: wait for it too.
        requests = [m.value() for m in drain(kafka_bootstrap, f"{prefix}models.retrain", idle_s=1,
                                             until=lambda out: len(out) >= 1)]
        verified = [Verifier(SECRET, app_id=app_id).verify(r, now_ms=int(time.time() * 1000), purpose="models") for r in requests]
        drift = [e for e in verified if e.command.op == "retrain"]
        assert len(drift) == 1 and drift[0].command.reason.startswith("drift: mean feature PSI")
        print(f"\ndrift: mean feature PSI {normal_psi:.3f} on normal traffic, {shifted_psi:.3f} under attack")

        # The retrain worker trains, gates (it passes: --max-regression 1) and announces; the worker swaps.
        def published() -> bool:
            active = reg.active("streamguard")
            return active is not None and active.version != old

        wait_for(published, 240, "the retrain worker to publish a version", log.read_text)
        new = reg.active("streamguard")
        assert new.extra["gate"]["passed"] and new.extra["gate"]["trigger"] == "drift"
        assert new.extra["gate"]["champion"] == old
        wait_for(lambda: json.loads(w.get("/health")[1])["model"]["version"] == new.version, 120,
                 "the worker to serve the published version", w.log_tail)

        # An operator's signed retrain goes through the CLI and waits for the retrain worker's answer.
        proc = subprocess.run([str(BIN), "control", "retrain", "--reason", "weekly", "--wait", "240"], env=env,
                              capture_output=True, timeout=300)
        out = (proc.stdout + proc.stderr).decode()
        assert proc.returncode == 0 and "promoted and announced" in out, out
        third = reg.active("streamguard")
        assert third.version not in (old, new.version) and third.extra["gate"]["trigger"] == "operator"
        replies = [orjson.loads(m.value()) for m in drain(
            kafka_bootstrap, f"{prefix}ops.status", idle_s=1,
            until=lambda out: sum(orjson.loads(m.value())["app_id"] == "retrain-worker" for m in out) >= 2)]
        assert [r["reason"] for r in replies if r["app_id"] == "retrain-worker"] == ["promoted", "promoted"]
    finally:
        rw.terminate()
        rw.wait(30)
