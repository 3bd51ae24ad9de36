"""Internal messages: hops packed per partition, the partitioner, encoding, and their schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring.healing import Threat
from streams.agents.windows import PartitionWindows
from streams.internal import (
    INTERNAL_MODELS,
    MAX_HOPS_PER_MESSAGE,
    EntityHop,
    FloorReport,
    Hop,
    Outbox,
    UnblockRequest,
    decode,
    encode,
    floor_report,
    partition_for,
    position,
    read_floor_report,
    read_healing,
    threat_notice,
    unblock_request,
    unpack,
)
from tests.streams.agents.helpers import CFG, NOW, apply_hop, flow, ingested, sshd_failure


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


# --- types and schemas ---------------------------------------------------------------------------

INTERNAL_SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "internal"


def _hops_of_a_walk() -> list[dict[str, Any]]:
    """Every hop message a flow and an sshd line produce, from ingest to scoring, as they go over the wire."""
    seen = []
    for raw, kind in ((flow(), "flows"), (sshd_failure(3), "logs")):
        hop = ingested(raw, kind=kind).hop
        states: dict[bytes, PartitionWindows] = {}
        seen.append(decode(encode(hop.message)))
        while hop.key is not None:
            msg = decode(encode(hop.message))
            states[hop.key], hop, _ = apply_hop(msg, states.get(hop.key), cfg=CFG, at=("hops:1", position(7, 0)))
            seen.append(decode(encode(hop.message)))
    return seen


def test_committed_internal_schemas_are_what_the_command_writes_now(tmp_path: Path) -> None:
    from streams.cli._schemas import write_schemas

    fresh = {p.name: p.read_bytes() for p in write_schemas(tmp_path, internal=True)}
    assert sorted(fresh) == sorted(f"{name}.schema.json" for name in INTERNAL_MODELS)
    committed = {p.name: p.read_bytes() for p in INTERNAL_SCHEMAS.glob("*.schema.json")}
    assert committed == fresh, "run `streamguard schemas --internal` after changing streams/internal.py"


def test_every_hop_the_stages_write_is_an_entity_hop() -> None:
    import jsonschema

    schema = json.loads((INTERNAL_SCHEMAS / "entity_hop.schema.json").read_text())
    hops = _hops_of_a_walk()
    assert len(hops) == 6  # a flow: source, destination, scoring; an sshd line: source, user, scoring
    assert [len(h["parts"]) for h in hops] == [0, 1, 2, 0, 1, 2]
    for hop in hops:
        jsonschema.Draft202012Validator(schema).validate(hop)
        assert orjson.loads(EntityHop.model_validate(hop).model_dump_json(by_alias=True, exclude_none=True)) == hop
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({**hops[0], "unexpected": 1})


def test_healing_messages_round_trip_and_junk_is_refused() -> None:
    threat = Threat(event_id="e1", label="brute_force", risk=91, target_type="ip", target="203.0.113.7",
                    evidence={"src_failures_10m": 30.0}, detected_at=NOW)
    assert read_healing(threat_notice(threat)) == threat
    assert read_healing(unblock_request("203.0.113.7")) == UnblockRequest(unblock="203.0.113.7")
    for junk in (b"", b"[]", b'{"unblock": 1, "x": 2}', b'{"event_id": "e1"}', b"not json",
                 orjson.dumps({**orjson.loads(threat_notice(threat)), "risk": 101})):
        with pytest.raises(ValueError):
            read_healing(junk)


def test_floor_reports_round_trip_and_junk_is_refused() -> None:
    assert read_floor_report(floor_report("w1", 1_700_000_000_000)) == FloorReport(worker="w1",
                                                                                     floor_ms=1_700_000_000_000)
    assert read_floor_report(floor_report("w1", None)).floor_ms is None
    for junk in (b"", b"{}", b'{"worker": "w1"}', b'{"worker": "w1", "floor_ms": "soon"}'):
        with pytest.raises(ValueError):
            read_floor_report(junk)


def test_outbox_interleaves_lanes_by_event_time_and_keeps_each_lanes_order() -> None:
    # One batch carries seconds of several input partitions: a partition's message must not hold
    # one lane's whole span before the next's, and within a lane the order (positions) is kept,
    # even where its event times go backwards.
    box = Outbox(1)
    lane_a = [("a0", 1000), ("a1", 3000), ("a2", 2500), ("a3", 5000)]  # a2 is late within its lane
    lane_b = [("b0", 2000), ("b1", 4000)]
    for lane, hops in (("logs:0", lane_a), ("flows:1", lane_b)):
        for hop_id, ts in hops:
            box.add(Hop(b"dst:x", {"id": hop_id, "ts": ts}), 0, lane)
    [(_, _, value)] = box.drain()
    ids = [h["id"] for h in unpack(value)]
    assert ids == ["a0", "b0", "a1", "a2", "b1", "a3"]
    assert [i for i in ids if i[0] == "a"] == ["a0", "a1", "a2", "a3"] and [i for i in ids if i[0] == "b"] == ["b0", "b1"]
