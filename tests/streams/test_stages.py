"""The per-stage logic of the worker (`streams.stages`) without a broker: ingest, entity hops, scoring."""

from __future__ import annotations

import base64
import copy
import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from features.entities import EntityState
from features.extract import ROLE_FEATURES
from features.parsing import TimeBounds
from features.windows import WindowConfig
from scoring.bundle import ModelBundle
from streams.stages import (MAX_HOPS_PER_MESSAGE, Hop, Ingested, Outbox, apply_hop, decode, encode, ingest,
                            partition_for, position, score_messages, unpack)
from streams.wire import MAX_DEADLETTER_BYTES, DeadLetter, ThreatEvent

# One xdist worker runs the module: its module-scoped bundles are trained once.
pytestmark = pytest.mark.xdist_group("test_stages")

NOW = datetime(2026, 1, 5, 9, 5, tzinfo=timezone.utc)
BOUNDS = TimeBounds()
CFG = WindowConfig()


def sshd_failure(second: int, src: str = "203.0.113.7", user: str = "root", pid: int = 100) -> bytes:
    """One sshd failed-password syslog line at 09:00:00 + `second` on 5 January (the year comes from NOW)."""
    minute, sec = divmod(second, 60)
    return (f"Jan  5 09:{minute:02d}:{sec:02d} bastion sshd[{pid}]: "
            f"Failed password for {user} from {src} port {4000 + second % 60000} ssh2").encode()


def flow(**overrides: Any) -> bytes:
    """One minimal-schema JSON flow."""
    return orjson.dumps({"ts": "2026-01-05T09:00:00Z", "src_ip": "198.51.100.4", "dst_ip": "10.0.0.5",
                         "dst_port": 443, "protocol": "tcp", "fwd_packets": 3, "fwd_bytes": 200, **overrides})


def ingest_at(raw: bytes | None, *, kind: str = "logs", topic: str | None = None, partition: int = 0,
              offset: int = 0, now: datetime = NOW) -> Ingested | DeadLetter:
    return ingest(raw, input_kind=kind, topic=topic or kind, partition=partition, offset=offset, now=now,
                  bounds=BOUNDS)


def ingested(raw: bytes, **kw: Any) -> Ingested:
    out = ingest_at(raw, **kw)
    assert isinstance(out, Ingested), out
    return out


def walk(hop: Hop, states: dict[bytes, EntityState], cfg: WindowConfig = CFG) -> tuple[Hop, list[str]]:
    """Take a message through all its entities, over the wire encoding as the agents do; the outcomes in order."""
    outcomes = []
    while hop.key is not None:
        key = hop.key
        msg = decode(encode(hop.message))
        assert msg["route"][msg["i"]][1].encode() == key  # a hop is keyed by the entity it visits
        states[key], hop, outcome = apply_hop(msg, states.get(key), cfg=cfg)
        outcomes.append(outcome)
    return hop, outcomes


# --- ingest: dead letters ------------------------------------------------------------------------

_FUTURE = (NOW + timedelta(days=400)).isoformat()


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("logs", None, "empty"),
        ("logs", b"\xff\xfe\x00\x81junk\xc3(", "not_utf8"),
        ("flows", b'{"ts": "2026-01-05T09:00:00Z", "src_ip": "198.5', "bad_json"),
        ("flows", flow(src_ip="999.1.2.3"), "bad_ip"),
        ("flows", flow(ts=_FUTURE), "time_out_of_range"),
    ],
    ids=["none", "binary", "truncated-json", "bad-ip", "far-future"],
)
def test_ingest_refuses_bad_input_with_a_dead_letter(kind: str, raw: bytes | None, reason: str) -> None:
    out = ingest_at(raw, kind=kind, topic=f"{kind}.raw", partition=3, offset=1234)
    assert isinstance(out, DeadLetter)
    assert out.reason == reason
    assert out.error
    assert (out.source_topic, out.source_partition, out.source_offset) == (f"{kind}.raw", 3, 1234)
    original = raw or b""
    assert base64.b64decode(out.original_b64) == original
    assert out.original_size == len(original)
    assert out.original_sha256 == hashlib.sha256(original).hexdigest()
    assert out.truncated is False
    assert out.received_at_ms == int(NOW.timestamp() * 1000)
    DeadLetter.model_validate_json(out.model_dump_json())  # what the agent sends is a valid record


def test_ingest_cuts_a_huge_message_but_says_what_arrived() -> None:
    raw = b"".join(b"%07d\n" % i for i in range(262_144))  # 2 MiB, no two 8-byte lines alike
    assert len(raw) == 2 * 1024 * 1024
    out = ingest_at(raw, kind="logs", topic="logs.raw", partition=1, offset=7)
    assert isinstance(out, DeadLetter)
    assert out.reason == "too_large"
    assert (out.source_topic, out.source_partition, out.source_offset) == ("logs.raw", 1, 7)
    assert out.original_size == len(raw)
    assert out.truncated is True
    kept = base64.b64decode(out.original_b64)
    assert MAX_DEADLETTER_BYTES == 256 * 1024
    assert kept == raw[: 256 * 1024]
    assert out.original_sha256 == hashlib.sha256(raw).hexdigest()


def test_ingest_does_not_raise_on_odd_input() -> None:
    for raw in (b"", b"   ", b"[]", b"42", b"{}", b"\x00" * 10, "é".encode() * 10):
        for kind in ("logs", "flows"):
            assert isinstance(ingest_at(raw, kind=kind), (Ingested, DeadLetter))


# --- ingest: good input ------------------------------------------------------------------------


def test_ingest_sshd_line_starts_at_the_source_entity() -> None:
    out = ingested(sshd_failure(1), kind="logs", topic="logs", partition=2, offset=40)
    msg = out.hop.message
    assert out.hop.key == b"src:203.0.113.7"
    assert msg["route"] == [["src", "src:203.0.113.7"], ["user", "user:root"]]
    assert msg["src"] == ["logs:2", 40]
    assert msg["id"] == out.event_id
    assert msg["i"] == 0 and msg["parts"] == {}
    assert msg["ev"]["src_ip"] == "203.0.113.7" and msg["ev"]["user"] == "root"
    assert msg["in"] == int(NOW.timestamp() * 1000)
    assert decode(encode(msg)) == msg  # the hop message survives the wire encoding unchanged


def test_ingest_flow_visits_source_then_destination() -> None:
    out = ingested(flow(), kind="flows", topic="flows", partition=1, offset=2)
    assert out.hop.key == b"src:198.51.100.4"
    assert out.hop.message["route"] == [["src", "src:198.51.100.4"], ["dst", "dst:10.0.0.5"]]
    assert out.hop.message["src"] == ["flows:1", 2]


def test_event_id_is_deterministic_from_the_input_position() -> None:
    first = ingested(sshd_failure(1), topic="logs", partition=0, offset=5)
    # Redelivered later (another clock), the same input position gives the same id.
    again = ingested(sshd_failure(1), topic="logs", partition=0, offset=5, now=NOW + timedelta(minutes=3))
    assert again.event_id == first.event_id
    assert len(first.event_id) == 32
    others = {
        ingested(sshd_failure(1), topic="logs", partition=0, offset=6).event_id,
        ingested(sshd_failure(1), topic="logs", partition=1, offset=5).event_id,
        ingested(sshd_failure(1), topic="logs.other", partition=0, offset=5).event_id,
    }
    assert first.event_id not in others and len(others) == 3


# --- apply_hop -----------------------------------------------------------------------------------


def test_walk_visits_every_entity_then_goes_to_scoring() -> None:
    for raw, kind, roles in ((sshd_failure(1), "logs", ["src", "user"]), (flow(), "flows", ["src", "dst"])):
        out = ingested(raw, kind=kind)
        states: dict[bytes, EntityState] = {}
        last, outcomes = walk(out.hop, states)
        assert last.key is None
        assert outcomes == ["counted", "counted"]
        msg = last.message
        assert msg["i"] == len(msg["route"]) == 2
        assert list(msg["parts"]) == roles
        assert all(len(msg["parts"][role]) == len(ROLE_FEATURES[role]) for role in roles)
        assert msg["parts"]["src"][0] == 1.0  # the source has seen this one event in the last minute
        assert sorted(states) == sorted(key.encode() for _, key in msg["route"])
        assert [states[key.encode()].role for _, key in msg["route"]] == roles


def test_applying_the_same_input_twice_counts_it_once() -> None:
    """A redelivered input (same topic/partition/offset) is a duplicate and leaves the state as it was."""
    hop = ingested(sshd_failure(1), offset=10).hop
    msg = hop.message
    state, nxt, outcome = apply_hop(copy.deepcopy(msg), None, cfg=CFG)
    assert outcome == "counted" and nxt.key == b"user:root"
    before = state.snapshot()
    assert before["w"]["events"] != EntityState("src", CFG).snapshot()["w"]["events"]  # the event was counted
    state2, nxt2, outcome2 = apply_hop(copy.deepcopy(msg), state, cfg=CFG)
    assert outcome2 == "duplicate"
    assert state2 is state
    assert state.snapshot() == before
    assert nxt2.key == nxt.key  # a duplicate still moves on, so a redelivery completes its route
    # A new input of the same entity is counted, and does change the state.
    _, _, outcome3 = apply_hop(copy.deepcopy(ingested(sshd_failure(2), offset=11).hop.message), state, cfg=CFG)
    assert outcome3 == "counted"
    assert state.snapshot() != before


def test_destination_counts_flows_that_arrive_out_of_raw_order() -> None:
    """Flows of one raw partition from two sources reach their shared destination through two
    source partitions, so the later raw offset may arrive first. Both are new to the destination;
    a redelivery of either hop message is not."""
    srcs: dict[bytes, EntityState] = {}
    to_dst = []
    for offset, src, hop_at in ((10, "198.51.100.4", ("hops:0", 7)), (11, "198.51.100.5", ("hops:3", 2))):
        hop = ingested(flow(src_ip=src), kind="flows", partition=1, offset=offset).hop
        srcs[hop.key], nxt, outcome = apply_hop(hop.message, None, cfg=CFG, at=hop_at)
        assert outcome == "counted" and nxt.key == b"dst:10.0.0.5"
        to_dst.append(decode(encode(nxt.message)))
    dst = None
    outcomes = []
    for msg in (to_dst[1], to_dst[0], copy.deepcopy(to_dst[1]), copy.deepcopy(to_dst[0])):
        dst, _, outcome = apply_hop(copy.deepcopy(msg), dst, cfg=CFG, at=("hops:2", len(outcomes)))
        outcomes.append(outcome)
    assert outcomes == ["counted", "counted", "duplicate", "duplicate"]
    assert dst.srcs.count(dst.watermark_ms) == 2


def test_hops_packed_in_one_message_count_once_each_and_not_again_when_redelivered() -> None:
    """Several hops of one internal message may visit the same entity: each is new there; the
    message delivered again (after a crash) brings only duplicates."""
    to_dst = []
    for offset, src in ((10, "198.51.100.4"), (11, "198.51.100.5"), (12, "198.51.100.6")):
        hop = ingested(flow(src_ip=src), kind="flows", partition=1, offset=offset).hop
        _, nxt, _ = apply_hop(hop.message, None, cfg=CFG, at=("hops:0", position(7, offset - 10)))
        to_dst.append(nxt)
    box = Outbox(4)
    for nxt in to_dst:
        box.add(nxt, 0)
    [(where, part, value)] = box.drain()
    assert where == "hops" and part == partition_for(b"dst:10.0.0.5", 4)
    dst, outcomes = None, []
    for delivery in range(2):  # the same message at offset 40, twice
        for index, msg in enumerate(unpack(value)):
            dst, _, outcome = apply_hop(msg, dst, cfg=CFG, at=(f"hops:{part}", position(40, index)))
            outcomes.append(outcome)
    assert outcomes == ["counted"] * 3 + ["duplicate"] * 3
    assert dst.srcs.count(dst.watermark_ms) == 3


def test_outbox_packs_hops_per_partition_in_order_and_splits_big_batches() -> None:
    box = Outbox(4)
    keys = [f"src:10.0.{i // 256}.{i % 256}".encode() for i in range(2 * MAX_HOPS_PER_MESSAGE + 50)]
    for n, key in enumerate(keys):
        box.add(Hop(key, {"id": str(n), "route": [["src", key.decode()]], "i": 0}), 0)
    box.add(Hop(None, {"id": "done-1"}), 6)
    box.add(Hop(None, {"id": "done-2"}), 6)
    assert len(box) == len(keys) + 2
    out = box.drain()
    assert len(box) == 0 and box.drain() == []
    seen: dict[int, list[int]] = {}
    for where, part, value in out:
        hops = unpack(value)
        assert 0 < len(hops) <= MAX_HOPS_PER_MESSAGE
        if where == "score":
            assert part == 6 % 4 and [h["id"] for h in hops] == ["done-1", "done-2"]
            continue
        for h in hops:
            assert partition_for(h["route"][0][1].encode(), 4) == part  # each hop goes to its entity's partition
        seen.setdefault(part, []).extend(int(h["id"]) for h in hops)
    assert sorted(n for ids in seen.values() for n in ids) == list(range(len(keys)))  # nothing lost or doubled
    assert all(ids == sorted(ids) for ids in seen.values())  # queue order kept per partition
    assert len(seen) == 4  # the keys spread over every partition


def test_outbox_splits_by_size_too() -> None:
    box = Outbox(1)
    for n in range(8):
        box.add(Hop(b"src:a", {"id": str(n), "pad": "x" * 300_000}), 0)
    out = box.drain()
    assert len(out) >= 3 and all(len(value) <= 1024 * 1024 for _, _, value in out)
    assert [h["id"] for _, _, value in out for h in unpack(value)] == [str(n) for n in range(8)]


def test_partition_for_is_kafkas_default_partitioner() -> None:
    """Hops are sent to an explicit partition; it must be the one the entity table's changelog
    (partitioned by the producer) puts the entity in, or state would live on the wrong worker."""
    from aiokafka.partitioner import DefaultPartitioner

    for n in (1, 3, 4, 12):
        parts = list(range(n))
        for i in range(200):
            key = f"src:192.0.2.{i}".encode()
            assert partition_for(key, n) == DefaultPartitioner()(key, parts, parts)


@pytest.mark.parametrize("raw", [b"\x00junk", b"{truncated", b"5", b"[1, 2]", b'"text"', b"", None, b"[{}, 3]"])
def test_unpack_refuses_what_is_not_a_list_of_hops(raw: bytes | None) -> None:
    with pytest.raises(ValueError):
        unpack(raw)


def test_unpack_reads_a_single_hop_written_before_batching() -> None:
    assert unpack(b'{"id": "a", "i": 0}') == [{"id": "a", "i": 0}]


def test_older_offset_of_the_same_partition_is_a_duplicate() -> None:
    """Inputs of one partition reach an entity in offset order, so an entity keeps only the last
    offset applied per input partition: a lower offset arriving after a higher one must be a
    redelivery, and is not counted again. Another partition's offsets are independent."""
    state, _, outcome = apply_hop(ingested(sshd_failure(5), partition=0, offset=20).hop.message, None, cfg=CFG)
    assert outcome == "counted"
    before = state.snapshot()
    _, _, outcome = apply_hop(ingested(sshd_failure(6), partition=0, offset=19).hop.message, state, cfg=CFG)
    assert outcome == "duplicate"
    assert state.snapshot() == before
    _, _, outcome = apply_hop(ingested(sshd_failure(6), partition=1, offset=3).hop.message, state, cfg=CFG)
    assert outcome == "counted"


def test_event_older_than_the_lateness_allows_is_late_and_not_counted() -> None:
    cfg = WindowConfig(allowed_lateness_ms=60_000)
    state, _, outcome = apply_hop(ingested(sshd_failure(240), offset=1).hop.message, None, cfg=cfg)
    assert outcome == "counted"
    assert state.watermark_ms == int(datetime(2026, 1, 5, 9, 4, tzinfo=timezone.utc).timestamp() * 1000)
    # Within the lateness (30 s behind the watermark): still counted.
    _, _, outcome = apply_hop(ingested(sshd_failure(210), offset=2).hop.message, state, cfg=cfg)
    assert outcome == "counted"
    before = state.snapshot()
    late, nxt, outcome = apply_hop(ingested(sshd_failure(100), offset=3).hop.message, state, cfg=cfg)
    assert outcome == "late"
    assert late is state
    assert nxt.key == b"user:root" and "src" in nxt.message["parts"]  # still features, still moves on
    after = state.snapshot()
    assert after["w"] == before["w"]
    assert after["watermark_ms"] == before["watermark_ms"]
    assert after["late_events"] == before["late_events"] + 1


# --- score_messages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A tiny bundle trained on one generator seed (a few seconds)."""
    from scoring.train import TrainParams
    from scoring.training import generator_data, run_training

    data = generator_data(seeds=(0,), duration_s=180, eval_seeds=(100,))
    out: Path = tmp_path_factory.mktemp("stage-models")
    return run_training(data, name="sg-stages", out_dir=out, params=TrainParams.defaults(n_estimators=30),
                       trained_at=datetime(2026, 2, 1, tzinfo=timezone.utc)).bundle


@pytest.fixture(scope="module")
def brute_force_messages() -> list[dict[str, Any]]:
    """40 sshd failures from one IP in 60 s, each walked through ingest and all its entities."""
    states: dict[bytes, EntityState] = {}
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
    for key, value, view, rec in out.threats:
        assert key == b"203.0.113.50"
        parsed = ThreatEvent.model_validate_json(value)
        assert parsed == rec
        assert parsed.ml_predicted_label == "brute_force" and parsed.ml_risk_score >= 70
        assert parsed.entity.type == "ip" and parsed.event["src_ip"] == "203.0.113.50"
        assert "label" not in parsed.event
        assert parsed.detected_at_ms == int(NOW.timestamp() * 1000)
        assert (view.event_id, view.label, view.risk, view.target) == (rec.event_id, "brute_force",
                                                                       rec.ml_risk_score, "203.0.113.50")
    now_ms = int(NOW.timestamp() * 1000)
    assert out.lags_s == [(now_ms - m["ev"]["ts"]) / 1000.0 for m in messages]
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
    from scoring.train import TrainParams
    from scoring.training import generator_data, run_training

    data = generator_data(seeds=(1,), duration_s=180, eval_seeds=(100,))
    out: Path = tmp_path_factory.mktemp("stage-models-other")
    return run_training(data, name="sg-stages", out_dir=out, feature_set="event",
                        params=TrainParams.defaults(n_estimators=30),
                        trained_at=datetime(2026, 3, 1, tzinfo=timezone.utc)).bundle


@pytest.fixture(scope="module")
def many_sources() -> list[dict[str, Any]]:
    """Five sshd failures from each of 24 sources, walked through their entities."""
    states: dict[bytes, EntityState] = {}
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
    for key, value, view, rec in out.threats:
        served = out.results[[m["id"] for m in many_sources].index(rec.event_id)]
        assert view.risk == rec.ml_risk_score == served.risk
        assert rec.model.version == served.model_version


def test_encoded_hops_cost_their_size_when_kept() -> None:
    """Held and queued hops keep `encode` output: it must not carry orjson's 4 KiB+ buffers."""
    import tracemalloc

    hop = {"ev": {"ts": 1_700_000_000_000, "src_ip": "10.0.0.1", "pad": "x" * 400}, "route": [["src_ip", "10.0.0.1"]]}
    size = len(orjson.dumps(hop))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [encode(hop) for _ in range(500)]
        per_hop = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert all(decode(k) == hop for k in kept)
    assert per_hop < size + 200, (per_hop, size)
