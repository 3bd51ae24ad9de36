"""Window stores per hop partition: batches equal hop-by-hop, redeliveries, snapshots that resume exactly."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import pytest

from streams.agents.windows import (
    PartitionWindows,
    WindowStates,
    apply_hops,
    chunk_key,
    manifest_key,
    prepare_hop,
)
from streams.internal import hop_event, partition_for, position
from streams.metrics import Metrics
from tests.streams.agents.helpers import CFG, flow, ingested, sshd_failure


def _first_hops(n: int) -> list[dict]:
    """First hops of n inputs of one raw partition: flows and sshd failures from a few sources."""
    out = []
    for i in range(n):
        if i % 3:
            raw, kind = flow(src_ip=f"198.51.100.{i % 7}", dst_port=20 + i % 11,
                             ts=f"2026-01-05T09:00:{i % 60:02d}Z"), "flows"
        else:
            raw, kind = sshd_failure(i, src=f"203.0.113.{i % 5}", user=f"u{i % 4}"), "logs"
        out.append(ingested(raw, kind=kind, offset=100 + i).hop.message)
    return out


def _apply(windows: PartitionWindows, msgs: list[dict], start: int = 0) -> list[tuple[dict, str]]:
    items = [(prepare_hop(copy.deepcopy(m)), ("hops:0", position(start + j, 0))) for j, m in enumerate(msgs)]
    return [(hop.message["parts"], outcome) for hop, outcome in apply_hops(windows, items)]


def test_a_batch_gives_each_hop_the_features_it_gets_alone() -> None:
    msgs = _first_hops(60)
    batched = _apply(PartitionWindows.empty(CFG), msgs)
    alone_windows = PartitionWindows.empty(CFG)
    alone = [_apply(alone_windows, [m])[0] for m in msgs]
    assert batched == alone
    assert {o for _, o in batched} == {"counted"}
    assert max(parts["src"][0] for parts, _ in batched) > 1  # windows really fill up


def test_a_redelivered_input_in_the_same_batch_is_read_not_counted() -> None:
    msgs = _first_hops(4)
    windows = PartitionWindows.empty(CFG)
    got = _apply(windows, [*msgs, msgs[1], msgs[3]])
    assert [o for _, o in got] == ["counted"] * 4 + ["duplicate"] * 2
    again = _apply(windows, msgs)
    assert [o for _, o in again] == ["duplicate"] * 4


def test_a_snapshot_restored_mid_stream_continues_exactly() -> None:
    msgs = _first_hops(90)
    whole = PartitionWindows.empty(CFG)
    expected = _apply(whole, msgs)
    first = PartitionWindows.empty(CFG)
    head = _apply(first, msgs[:50])
    restored = PartitionWindows.restore(first.snapshot(), CFG)
    assert restored.marks == first.marks
    tail = _apply(restored, msgs[50:], start=50)
    assert head + tail == expected
    # A replay of inputs the snapshot covers is recognised: nothing counted twice.
    assert {o for _, o in _apply(PartitionWindows.restore(first.snapshot(), CFG), msgs[:50])} == {"duplicate"}


@pytest.mark.parametrize("junk", [b"", b"SGW2", b"XXXX\x01\x00\x00\x00\x02{}", b"SGW2\x09\x00\x00\x00\x02{}"])
def test_a_snapshot_that_is_not_ours_is_refused_clearly(junk: bytes) -> None:
    with pytest.raises(ValueError):
        PartitionWindows.restore(junk, CFG)


def test_snapshot_keys_land_in_the_partition_they_describe() -> None:
    for n in (1, 4, 12):
        for part in range(n):
            assert partition_for(manifest_key(part, n), n) == part
            assert {partition_for(chunk_key(part, n, gen, i), n) for gen in (1, 2) for i in range(3)} == {part}
    assert manifest_key(1, 4) != chunk_key(1, 4, 1, 0) != chunk_key(1, 4, 2, 0)


def test_a_hop_bound_for_an_unknown_role_is_refused() -> None:
    msg = ingested(sshd_failure(1)).hop.message
    msg["route"][0] = ["admin", "src:203.0.113.7"]
    with pytest.raises(ValueError):
        prepare_hop(msg)


def test_the_held_hop_is_left_as_it_came_so_a_failed_batch_can_be_applied_again() -> None:
    msg = ingested(sshd_failure(1)).hop.message
    before = copy.deepcopy(msg)
    windows = PartitionWindows.empty(CFG)
    (nxt, outcome), = apply_hops(windows, [(prepare_hop(msg), ("hops:0", position(0, 0)))])
    assert msg == before and outcome == "counted"
    assert nxt.message["i"] == 1 and set(nxt.message["parts"]) == {"src"} and nxt.message["via"] == ["hops:0", 0]


def test_a_hop_written_before_the_inputs_travelled_gives_the_same_features() -> None:
    new = _first_hops(30)
    old = []
    for m in new:  # the earlier shape: the event as an object, no `ts` or `k`
        m = copy.deepcopy(m)
        m["ev"] = hop_event(m)
        del m["ts"], m["k"]
        old.append(m)
    assert _apply(PartitionWindows.empty(CFG), old) == _apply(PartitionWindows.empty(CFG), new)


@pytest.mark.parametrize("k", [None, "x", [], [0] * 12, [0] * 14, [0, -1, 0, 0, None, 0, 0.0, 0.0, "u", 0, 0, 0, 0],
                               [0, -1, 0, 0, float("nan"), 0, 0.0, 0.0, 0, 0, 0, 0, 0],
                               [0, -1, 0, 0, None, 0, float("inf"), 0.0, 0, 0, 0, 0, 0],
                               [0, -1, 0, 0, None, 0, 0.0, 0.0, -5, 0, 0, 0, 0],
                               [0, -1, 0, 0, None, 0, 0.0, 0.0, 1 << 63, 0, 0, 0, 0],
                               [True, -1, 0, 0, None, 0, 0.0, 0.0, 0, 0, 0, 0, 0],
                               [0, -2, 0, 0, None, 0, 0.0, 0.0, 0, 0, 0, 0, 0],
                               [0, -1, 0, 0, None, 0, None, 0.0, 0, 0, 0, 0, 0],
                               [0, -1, 0, 0, None, 1, 0.0, 0.0, 0, 0, 0, 0, -1]])
def test_kernel_inputs_the_ingest_could_not_have_written_are_refused(k: object) -> None:
    msg = ingested(sshd_failure(1)).hop.message
    msg["k"] = k
    with pytest.raises((ValueError, TypeError)):
        prepare_hop(msg)


class _Table(dict):
    """A table as `WindowStates` reads it (`get`), written through `write_durably` below."""


def _states(table: _Table, fail: list[bool]) -> WindowStates:
    async def write_durably(_table, items) -> None:
        if fail and fail.pop():
            raise ConnectionError("broker gone")
        for key, value in items:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    ctx = SimpleNamespace(tables=SimpleNamespace(windows=table), settings=SimpleNamespace(topic_partitions=4),
                          metrics=Metrics(), max_record_bytes=70_000, write_durably=write_durably)
    return WindowStates(ctx, CFG, SimpleNamespace(partition_watermark={}))


def test_a_checkpoint_restores_on_the_next_owner_and_a_failed_one_keeps_its_inputs_pending() -> None:
    msgs = _first_hops(400)
    table, fail = _Table(), [False, True]  # the first checkpoint fails, the second goes through
    owner = _states(table, fail)
    _apply(owner.get(2), msgs[:300])
    owner.applied(2, "input-1")
    with pytest.raises(ConnectionError):
        asyncio.run(owner.checkpoint())
    assert owner.pending == {2: ["input-1"]} and not table  # nothing to acknowledge yet
    assert asyncio.run(owner.checkpoint()) == ["input-1"] and not owner.has_pending()
    chunks = [k for k in table if k != manifest_key(2, 4)]
    assert len(chunks) > 1 and all(len(table[k]) <= 70_000 for k in chunks)  # cut under the record limit
    expected = _apply(owner.get(2), msgs[300:], start=300)
    successor = _states(table, [])
    assert _apply(successor.get(2), msgs[300:], start=300) == expected  # restored exactly
    # A second generation replaces the first: its chunks are gone from the table.
    owner.applied(2, "input-2")
    asyncio.run(owner.checkpoint())
    assert not set(chunks) & set(table)
    table[manifest_key(2, 4)] = table[manifest_key(2, 4)].replace(b'"sha256":"', b'"sha256":"0')
    assert _states(table, []).get(2).store.ids == {}  # a snapshot that fails its checksum: afresh, counted
