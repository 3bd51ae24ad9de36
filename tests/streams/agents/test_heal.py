"""The heal stage's last net: a policy state too large for one record is shed until it fits, never refused."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson

from scoring.healing import HealingState, PolicyConfig, Threat, decide
from streams.agents.heal import HealStage
from streams.metrics import Metrics
from tests.streams.conftest import metric_sum, parse_metrics

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _state(threats: int) -> HealingState:
    state, cfg = HealingState(), PolicyConfig(max_blocks_per_minute=50)
    for i in range(threats):
        t = Threat(event_id=f"event-{i:06d}-" + "0" * 32, label="brute_force", risk=95, target_type="ip",
                   target=f"10.9.{i // 250}.{i % 250 + 1}", evidence={"src_failed_logins_10m": 9.0}, detected_at=T0,
                   subjects={"dst_ip": f"172.16.{i % 64}.1"})
        decide(t, state, cfg, T0)
    return state


def test_a_state_that_fits_is_written_whole() -> None:
    stage = SimpleNamespace(ctx=SimpleNamespace(max_record_bytes=1024 * 1024, metrics=Metrics()))
    state = _state(100)
    assert HealStage._fitting(stage, state) == state.snapshot()


def test_an_oversized_state_is_shed_until_it_fits_keeping_every_block() -> None:
    metrics = Metrics()
    stage = SimpleNamespace(ctx=SimpleNamespace(max_record_bytes=48 * 1024, metrics=metrics))
    state = _state(2000)
    active = state.sizes()["active"]
    assert len(orjson.dumps(state.snapshot())) > 10 * 48 * 1024
    snap = HealStage._fitting(stage, state)
    assert len(orjson.dumps(snap)) <= 0.9 * 48 * 1024
    assert state.sizes()["attacked_targets"] == 0 and state.sizes()["active"] == active == 50
    assert HealingState.restore(snap) == state
    assert metric_sum(parse_metrics(metrics.render().decode()), "streamguard_records_too_large_total",
                      record="healing_state") == 1
