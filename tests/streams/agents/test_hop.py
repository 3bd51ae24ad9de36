"""Entity hops without a broker: window updates, de-duplication, lateness."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from types import SimpleNamespace

from features.entities import ROLES
from features.extract import ROLE_FEATURES
from features.windows import WindowConfig
from streams.agents.hop import HOLE_WAIT_S, HopStage
from streams.agents.windows import PartitionWindows
from streams.internal import Outbox, decode, encode, partition_for, position, unpack
from tests.streams.agents.helpers import CFG, apply_hop, flow, ingested, sshd_failure, walk

# --- apply_hop -----------------------------------------------------------------------------------


def test_walk_visits_every_entity_then_goes_to_scoring() -> None:
    for raw, kind, roles in ((sshd_failure(1), "logs", ["src", "user"]), (flow(), "flows", ["src", "dst"])):
        out = ingested(raw, kind=kind)
        states: dict[bytes, PartitionWindows] = {}
        last, outcomes = walk(out.hop, states)
        assert last.key is None
        assert outcomes == ["counted", "counted"]
        msg = last.message
        assert msg["i"] == len(msg["route"]) == 2
        assert list(msg["parts"]) == roles
        assert all(len(msg["parts"][role]) == len(ROLE_FEATURES[role]) for role in roles)
        assert msg["parts"]["src"][0] == 1.0  # the source has seen this one event in the last minute
        assert sorted(states) == sorted(key.encode() for _, key in msg["route"])
        assert [ROLES[states[key.encode()].store.role[states[key.encode()].store.ids[key]]]
                for _, key in msg["route"]] == roles


def test_applying_the_same_input_twice_counts_it_once() -> None:
    """A redelivered input (same topic/partition/offset) is a duplicate and leaves the state as it was."""
    hop = ingested(sshd_failure(1), offset=10).hop
    msg = hop.message
    state, nxt, outcome = apply_hop(copy.deepcopy(msg), None, cfg=CFG)
    assert outcome == "counted" and nxt.key == b"user:root"
    before = state.snapshot()
    assert state.store.stats().buckets > 0  # the event was counted
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
    srcs: dict[bytes, PartitionWindows] = {}
    to_dst = []
    for offset, src, hop_at in ((10, "198.51.100.4", ("hops:0", 7)), (11, "198.51.100.5", ("hops:3", 2))):
        hop = ingested(flow(src_ip=src), kind="flows", partition=1, offset=offset).hop
        srcs[hop.key], nxt, outcome = apply_hop(hop.message, None, cfg=CFG, at=hop_at)
        assert outcome == "counted" and nxt.key == b"dst:10.0.0.5"
        to_dst.append(decode(encode(nxt.message)))
    dst = None
    outcomes, distinct = [], []
    for msg in (to_dst[1], to_dst[0], copy.deepcopy(to_dst[1]), copy.deepcopy(to_dst[0])):
        dst, nxt, outcome = apply_hop(copy.deepcopy(msg), dst, cfg=CFG, at=("hops:2", len(outcomes)))
        outcomes.append(outcome)
        distinct.append(nxt.message["parts"]["dst"][0])  # dst_distinct_srcs_1m
    assert outcomes == ["counted", "counted", "duplicate", "duplicate"]
    assert distinct == [1, 2, 2, 2]


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
    dst, outcomes, distinct = None, [], []
    for _delivery in range(2):  # the same message at offset 40, twice
        for index, msg in enumerate(unpack(value)):
            dst, nxt, outcome = apply_hop(msg, dst, cfg=CFG, at=(f"hops:{part}", position(40, index)))
            outcomes.append(outcome)
            distinct.append(nxt.message["parts"]["dst"][0])
    assert outcomes == ["counted"] * 3 + ["duplicate"] * 3
    assert distinct == [1, 2, 3, 3, 3, 3]



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
    eid = state.store.ids["src:203.0.113.7"]
    assert state.store.wm[eid] == int(datetime(2026, 1, 5, 9, 4, tzinfo=UTC).timestamp() * 1000)
    # Within the lateness (30 s behind the watermark): still counted.
    _, _, outcome = apply_hop(ingested(sshd_failure(210), offset=2).hop.message, state, cfg=cfg)
    assert outcome == "counted"
    before = state.store.stats(), int(state.store.wm[eid]), int(state.store.late[eid])
    late, nxt, outcome = apply_hop(ingested(sshd_failure(100), offset=3).hop.message, state, cfg=cfg)
    assert outcome == "late"
    assert late is state
    assert nxt.key == b"user:root" and "src" in nxt.message["parts"]  # still features, still moves on
    assert nxt.message["parts"]["src"][2] == 0  # read as of its own time: the two counted are later
    assert (state.store.stats(), int(state.store.wm[eid]), int(state.store.late[eid])) == (*before[:2], before[2] + 1)


# --- offset order per hop partition ------------------------------------------------------------


def _msg(partition: int, offset: int, generation: int = 1) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset, generation_id=generation))


def test_messages_past_a_hole_wait_until_the_hole_comes_again() -> None:
    """A message Faust never delivered, applied after later ones, would be taken for a redelivery
    and never counted: the stage leaves later messages unheld until the hole arrives."""
    stage = HopStage.__new__(HopStage)
    stage._holes = {}
    assert stage._in_order(_msg(0, 10), None, 0.0)
    assert not stage._in_order(_msg(0, 12), 11, 0.0)  # offset 11 never came: the fetch goes back for it
    assert not stage._in_order(_msg(0, 13), None, 0.1)  # still past the hole
    assert stage._in_order(_msg(1, 40), None, 0.1)  # other partitions go on
    assert stage._in_order(_msg(0, 11), None, 0.2)  # the hole, fetched again
    assert stage._in_order(_msg(0, 12), None, 0.2) and stage._in_order(_msg(0, 13), None, 0.2)


def test_a_hole_that_never_comes_again_stops_nothing_for_long() -> None:
    stage = HopStage.__new__(HopStage)
    stage._holes = {}
    assert not stage._in_order(_msg(0, 12), 11, 0.0)
    assert not stage._in_order(_msg(0, 13), None, HOLE_WAIT_S - 1)
    assert stage._in_order(_msg(0, 14), None, HOLE_WAIT_S + 1)  # given up: going on, logged
    # A rebalance's seek (a new generation) replaces the wait.
    assert not stage._in_order(_msg(1, 5), 3, 0.0)
    assert stage._in_order(_msg(1, 6, generation=2), None, 0.1)
