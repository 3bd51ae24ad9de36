"""The broker goes away mid-stream and comes back: the worker reconnects by itself and nothing is lost.

Runs its own single-node broker (same jars, other ports and log dir) so that stopping it
does not disturb the session's broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features.simulation import ScenarioConfig, generate
from streams.wire import ThreatEvent
from tests.streams.conftest import drain, free_port, metric_sum, produce, unique_prefix, wait_for, wait_pipeline_idle

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "local" / "kafka.sh"


class _Broker:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "PYTHON": sys.executable, "KAFKA_PORT": str(self.port),
                    "KAFKA_CONTROLLER_PORT": str(free_port()), "KAFKA_SASL_PORT": str(free_port()), "KAFKA_HOME_DIR": str(home), "KAFKA_HEAP": "512m"}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def run(self, action: str) -> None:
        proc = subprocess.run(["bash", str(SCRIPT), action], env=self.env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"kafka.sh {action}: {proc.stdout}\n{proc.stderr}"


@pytest.fixture
def private_broker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[_Broker]:
    # kafka_bootstrap first: the session's broker setup fetches the jars this one reuses.
    broker = _Broker(tmp_path / "kafka")
    broker.run("up")
    try:
        yield broker
    finally:
        broker.run("down")


def test_worker_rides_out_a_broker_restart(private_broker: _Broker, start_worker) -> None:
    b = private_broker
    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    now = datetime.now(UTC)
    raws = generate(ScenarioConfig(seed=41, duration_s=120, start=now - timedelta(seconds=180)))
    half = len(raws) // 2
    w = start_worker(app_id, prefix, kafka_bootstrap=b.bootstrap, emit_scored=True)

    def send(part: list) -> None:
        for kind in ("logs", "flows"):
            produce(b.bootstrap, f"{prefix}{kind}.raw", [(r.actor.encode(), r.payload) for r in part if r.topic == kind])

    send(raws[:half])
    wait_for(lambda: metric_sum(w.metrics(), "streamguard_events_total") > 200, 120, "the worker to score something")
    b.run("down")  # mid-stream: part of the first half is still in flight
    time.sleep(10)
    assert w.proc.poll() is None, "the worker died while the broker was away:\n" + w.log_tail()
    b.run("up")
    send(raws[half:])
    wait_pipeline_idle(b.bootstrap, prefix, app_id, 240, w.log_tail)
    assert w.proc.poll() is None, w.log_tail()
    scored = {ThreatEvent.model_validate_json(m.value()).event_id
              for m in drain(b.bootstrap, f"{prefix}events.scored", idle_s=2, until=lambda out: len(out) >= len(raws))}
    assert len(scored) == len(raws), f"{len(raws) - len(scored)} of {len(raws)} events lost across the restart"
    assert metric_sum(w.metrics(), "streamguard_events_total", outcome="deadlettered") == 0
