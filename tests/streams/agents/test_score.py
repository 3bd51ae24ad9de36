"""Scoring without a broker: micro-batches, threats, scored events, the challenger."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring.bundle import ModelBundle
from streams.agents.score import score_messages
from streams.agents.windows import PartitionWindows
from streams.internal import decode, encode
from streams.wire import ThreatEvent
from tests.streams.agents.helpers import NOW, ingested, sshd_failure, walk

# One xdist worker runs the module: its module-scoped bundles are trained once.
pytestmark = pytest.mark.xdist_group("test_score")

# --- score_messages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A tiny bundle trained on one generator seed (a few seconds)."""
    from scoring.train import TrainParams, generator_data, run_training

    data = generator_data(seeds=(0,), duration_s=180, eval_seeds=(100,))
    out: Path = tmp_path_factory.mktemp("stage-models")
    return run_training(data, name="sg-stages", out_dir=out, params=TrainParams.defaults(n_estimators=30),
                       trained_at=datetime(2026, 2, 1, tzinfo=UTC)).bundle


@pytest.fixture(scope="module")
def brute_force_messages() -> list[dict[str, Any]]:
    """40 sshd failures from one IP in 60 s, each walked through ingest and all its entities."""
    states: dict[bytes, PartitionWindows] = {}
    messages = []
    for i in range(40):
        out = ingested(sshd_failure(i * 60 // 40, src="203.0.113.50", pid=100 + i), partition=0, offset=i)
        last, outcomes = walk(out.hop, states)
        assert last.key is None and outcomes == ["counted", "counted"]
        messages.append(decode(encode(last.message)))
    return messages


def test_scoring_a_brute_force(bundle: ModelBundle, brute_force_messages: list[dict[str, Any]]) -> None:
    messages = copy.deepcopy(brute_force_messages)
    out = score_messages(messages, bundle, threshold=70, emit_scored=True, now=NOW)
    assert messages == brute_force_messages  # scoring reads its input, never changes it
    assert len(out.results) == len(out.events) == len(out.scored) == len(messages) == 40
    ids = [m["id"] for m in messages]
    for (key, value), msg_id in zip(out.scored, ids):
        rec = ThreatEvent.model_validate_json(value)
        assert rec.event_id == msg_id
        assert key == b"203.0.113.50" == rec.entity.value.encode()
    # Once the failures pile up, every event is a brute-force threat.
    threat_ids = [rec.event_id for _, _, _, rec in out.threats]
    assert set(ids[10:]) <= set(threat_ids)
    assert threat_ids == [i for i in ids if i in set(threat_ids)]  # in input order
    piled_up = set(ids[10:])
    for key, value, view, rec in out.threats:
        assert key == b"203.0.113.50"
        parsed = ThreatEvent.model_validate_json(value)
        assert parsed == rec
        assert parsed.ml_risk_score >= 70
        # A source's first failure is the first of a brute force or of a spray alike: the label
        # is read once the failures pile up (the tiny model called the first one a spray once).
        assert parsed.ml_predicted_label == "brute_force" or parsed.event_id not in piled_up
        assert parsed.entity.type == "ip" and parsed.event["src_ip"] == "203.0.113.50"
        assert "label" not in parsed.event
        assert parsed.detected_at_ms == int(NOW.timestamp() * 1000)
        assert (view.event_id, view.label, view.risk, view.target) == (rec.event_id, rec.ml_predicted_label,
                                                                       rec.ml_risk_score, "203.0.113.50")
    now_ms = int(NOW.timestamp() * 1000)
    assert out.lags_s == [(now_ms - m["ts"]) / 1000.0 for m in messages]
    assert all(lag >= 0 for lag in out.lags_s)
    assert out.lags_s[0] == 300.0  # 09:00:00 scored at 09:05:00: event time, not ingest time
    assert out.processing_lags_s == [0.0] * 40  # ingested and scored at the same (fixed) clock
    assert out.model_seconds >= 0


def test_scored_output_is_optional_and_does_not_change_threats(
        bundle: ModelBundle, brute_force_messages: list[dict[str, Any]]) -> None:
    with_scored = score_messages(copy.deepcopy(brute_force_messages), bundle, threshold=70, emit_scored=True, now=NOW)
    without = score_messages(copy.deepcopy(brute_force_messages), bundle, threshold=70, emit_scored=False, now=NOW)
    assert without.scored == []
    assert without.threats
    assert [(k, v) for k, v, _, _ in without.threats] == [(k, v) for k, v, _, _ in with_scored.threats]


# --- challenger: shadow and A/B -------------------------------------------------------------


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A second, different version: event features only (it cannot see the windows a brute force fills)."""
    from scoring.train import TrainParams, generator_data, run_training

    data = generator_data(seeds=(1,), duration_s=180, eval_seeds=(100,))
    out: Path = tmp_path_factory.mktemp("stage-models-other")
    return run_training(data, name="sg-stages", out_dir=out, feature_set="event",
                        params=TrainParams.defaults(n_estimators=30),
                        trained_at=datetime(2026, 3, 1, tzinfo=UTC)).bundle


@pytest.fixture(scope="module")
def many_sources() -> list[dict[str, Any]]:
    """Five sshd failures from each of 24 sources, walked through their entities."""
    states: dict[bytes, PartitionWindows] = {}
    messages = []
    for n in range(24):
        for i in range(5):
            raw = sshd_failure(n * 2 + i, src=f"198.51.100.{n + 1}", pid=1000 + n * 5 + i)
            last, _ = walk(ingested(raw, partition=0, offset=n * 5 + i).hop, states)
            messages.append(decode(encode(last.message)))
    return messages


def _versions_by_entity(values: list[bytes]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for value in values:
        rec = ThreatEvent.model_validate_json(value)
        out.setdefault(rec.entity.value, set()).add(rec.model.version)
    return out


def test_a_shadow_challenger_changes_no_output_and_is_compared(
        bundle: ModelBundle, other_bundle: ModelBundle, brute_force_messages: list[dict[str, Any]]) -> None:
    assert other_bundle.version != bundle.version
    alone = score_messages(copy.deepcopy(brute_force_messages), bundle, threshold=70, emit_scored=True, now=NOW)
    shadowed = score_messages(copy.deepcopy(brute_force_messages), bundle, threshold=70, emit_scored=True, now=NOW,
                              challenger=other_bundle)
    assert alone.comparison is None and alone.challenger == []
    assert [(k, v) for k, v, _, _ in shadowed.threats] == [(k, v) for k, v, _, _ in alone.threats]
    assert shadowed.scored == alone.scored
    assert shadowed.shadow == [] and shadowed.served_by_challenger == 0
    c = shadowed.comparison
    assert c is not None and c.events == 40 == len(shadowed.challenger)
    assert c.champion_threats == len(alone.threats)
    assert c.challenger_threats == sum(r.risk >= 70 for r in shadowed.challenger)
    assert c.same_label == sum(a.label == b.label for a, b in zip(shadowed.champion, shadowed.challenger))
    assert all(r.model_version == other_bundle.version for r in shadowed.challenger)
    # Another model, other risks: the comparison sees them (both call these events brute force).
    assert c.abs_risk_diff_sum == sum(abs(a.risk - b.risk) for a, b in zip(shadowed.champion, shadowed.challenger)) > 0


def test_the_shadow_topic_gets_the_challengers_verdicts(
        bundle: ModelBundle, other_bundle: ModelBundle, brute_force_messages: list[dict[str, Any]]) -> None:
    for emit_scored in (False, True):
        out = score_messages(copy.deepcopy(brute_force_messages), bundle, threshold=30, emit_scored=emit_scored,
                             now=NOW, challenger=other_bundle, emit_shadow=True)
        records = [ThreatEvent.model_validate_json(v) for _, v in out.shadow]
        expected = [r for r in out.challenger if emit_scored or r.risk >= 30]
        assert [r.ml_risk_score for r in records] == [r.risk for r in expected]
        assert {r.model.version for r in records} <= {other_bundle.version}
        assert all(r.model.feature_schema_version == other_bundle.feature_schema_version for r in records)
        # The served outputs still name the champion.
        assert {ThreatEvent.model_validate_json(v).model.version for _, v, _, _ in out.threats} <= {bundle.version}
    assert len(records) == 40


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_an_ab_split_serves_whole_entities_with_one_model(
        bundle: ModelBundle, other_bundle: ModelBundle, many_sources: list[dict[str, Any]], fraction: float) -> None:
    from scoring.challenger import served_by_challenger

    out = score_messages(copy.deepcopy(many_sources), bundle, threshold=0, emit_scored=True, now=NOW,
                         challenger=other_bundle, ab_fraction=fraction)
    by_entity = _versions_by_entity([v for _, v in out.scored])
    assert len(by_entity) == 24
    for entity, versions in by_entity.items():
        want = other_bundle.version if served_by_challenger(entity, fraction) else bundle.version
        assert versions == {want}, entity
    on_challenger = sum(served_by_challenger(e, fraction) for e in by_entity)
    assert out.served_by_challenger == on_challenger * 5
    assert on_challenger == {0.0: 0, 1.0: 24}.get(fraction, on_challenger)
    if fraction == 0.5:
        assert 0 < on_challenger < 24  # both arms hold entities
    # Threats (what healing acts on) follow the same split, with the serving model's risk.
    for _key, _value, view, rec in out.threats:
        served = out.results[[m["id"] for m in many_sources].index(rec.event_id)]
        assert view.risk == rec.ml_risk_score == served.risk
        assert rec.model.version == served.model_version


def test_live_sampling_takes_every_flagged_row_and_one_in_n_of_the_others(
        bundle: ModelBundle, many_sources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.agents import score as score_mod
    from streams.agents.score import sampled

    def run(every: int, threshold: int = 70):
        return score_messages(copy.deepcopy(many_sources), bundle, threshold=threshold, emit_scored=False, now=NOW,
                              sample_every=every)

    assert run(0).sample == []
    chosen = [m["id"] for m in many_sources if sampled(m["id"], 7)]
    assert 0 < len(chosen) < len(many_sources) / 3
    # Nothing flagged (no risk reaches 101): one row in seven, chosen by event id.
    quiet = run(7, threshold=101).sample
    assert [r.event_id for r in quiet] == chosen and not any(r.flagged for r in quiet)
    out = run(7)
    flagged = {m["id"] for m, r in zip(many_sources, out.results) if r.risk >= 70 and r.label != "benign"}
    assert flagged - set(chosen)
    assert [r.event_id for r in out.sample] == [m["id"] for m in many_sources if m["id"] in flagged | set(chosen)]
    by_id = {m["id"]: (m, r, x) for m, r, x in zip(many_sources, out.results, out.x)}
    for row in out.sample:
        msg, res, x = by_id[row.event_id]
        assert (row.label, row.risk, row.flagged) == (res.label, res.risk, row.event_id in flagged)
        assert row.x == x.tolist() and row.ts_ms == msg["ts"] and row.source.startswith("198.51.100.")
    assert [r.event_id for r in run(7).sample] == [r.event_id for r in out.sample]  # the same rows again
    # A flood: an even spread of at most SAMPLE_MAX_ROWS rows, first and last included.
    monkeypatch.setattr(score_mod, "SAMPLE_MAX_ROWS", 10)
    capped = run(1).sample
    assert len(capped) == 10 and capped[0].event_id == many_sources[0]["id"]
    assert capped[-1].event_id == many_sources[-1]["id"]


def test_an_attacker_chosen_entity_of_any_length_is_sampled_not_refused(bundle: ModelBundle) -> None:
    # A JSON app log without an address: its entity is the user name the attacker wrote (the
    # event keeps 256 characters of it). Sampling it must never fail the scoring of its batch.
    raw = orjson.dumps({"ts": "2026-01-05T09:00:01Z", "level": "warn", "service": "auth-api", "user": "u" * 300,
                        "message": "login failed"})
    last, _ = walk(ingested(raw, partition=0, offset=1).hop, {})
    out = score_messages([decode(encode(last.message))], bundle, threshold=70, emit_scored=False, now=NOW,
                         sample_every=1)
    [row] = out.sample
    assert row.source == "u" * 256 and len(out.results) == 1
