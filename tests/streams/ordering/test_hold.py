"""HopHold: hops wait for the event-time floor, go lowest time first, per partition in arrival order."""

from __future__ import annotations

import pytest

from streams.ordering.hold import HopHold


@pytest.fixture
def make_hold():
    def make(slack_ms: int = 0, max_hold_s: float = 10.0, max_held: int = 1000) -> HopHold:
        return HopHold(slack_ms=slack_ms, max_hold_s=max_hold_s, max_held=max_held)
    return make


def test_nothing_behind_releases_everything_lowest_time_first(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(30, "a30"), (50, "a50")], now_s=0)
    h.add(1, "m1", [(40, "b40"), (20, "b20")], now_s=0)
    out = h.release(None, now_s=0)
    # Partition 1's 20 waits behind its own 40: per partition, arrival order is kept.
    assert [p for _, p in out.hops] == ["a30", "b40", "b20", "a50"]
    assert sorted(out.done) == ["m0", "m1"] and len(h) == 0 and not h.has_entries()


def test_floor_holds_later_hops_until_it_passes(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(10, "a10"), (25, "a25")], now_s=0)
    h.add(1, "m1", [(15, "b15")], now_s=0)
    assert h.floor() == 10
    out = h.release(20, now_s=1)
    assert [p for _, p in out.hops] == ["a10", "b15"] and out.done == ["m1"] and out.forced == 0
    assert len(h) == 1 and h.floor() == 25
    assert h.release(24, now_s=2).hops == []
    out = h.release(25, now_s=3)
    assert [p for _, p in out.hops] == ["a25"] and out.done == ["m0"]


def test_slack_lets_hops_just_above_the_floor_go(make_hold) -> None:
    h = make_hold(slack_ms=5)
    h.add(0, "m", [(104, "x"), (106, "y")], now_s=0)
    assert [p for _, p in h.release(100, now_s=0).hops] == ["x"]


def test_a_hop_held_too_long_goes_anyway_and_counts_as_forced(make_hold) -> None:
    h = make_hold(max_hold_s=10)
    h.add(0, "old", [(500, "o")], now_s=0)
    h.add(1, "new", [(400, "n")], now_s=9)
    out = h.release(100, now_s=10.5)
    assert [p for _, p in out.hops] == ["o"] and out.forced == 1 and out.done == ["old"]
    assert len(h) == 1


def test_too_many_held_releases_the_lowest(make_hold) -> None:
    h = make_hold(max_held=2)
    h.add(0, "m", [(5, "a"), (6, "b"), (7, "c")], now_s=0)
    out = h.release(0, now_s=0)
    assert [p for _, p in out.hops] == ["a"] and out.forced == 1 and len(h) == 2


def test_a_message_without_hops_is_done_at_the_next_release_in_order(make_hold) -> None:
    h = make_hold()
    h.add(0, "m1", [(50, "a")], now_s=0)
    h.add(0, "bad", [], now_s=0)  # e.g. unreadable: dead-lettered, still to acknowledge
    assert h.has_entries() and h.floor() == 50
    out = h.release(10, now_s=0)
    assert out.done == [] and out.hops == []  # acknowledged after the message before it, not before
    out = h.release(None, now_s=0)
    assert out.done == ["m1", "bad"]


def test_drop_forgets_other_generations_and_revoked_partitions(make_hold) -> None:
    h = make_hold()
    h.add(0, "old", [(1, "a"), (2, "b")], now_s=0, generation=1)
    h.add(0, "cur", [(3, "c")], now_s=0, generation=2)
    h.add(1, "gone", [(4, "d")], now_s=0, generation=2)
    assert h.drop(generation=2, keep={0}) == 3
    assert len(h) == 1
    out = h.release(None, now_s=0)
    assert [p for _, p in out.hops] == ["c"] and out.done == ["cur"]


def test_flush_releases_everything_in_order_and_counts_it_forced(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(30, "a30"), (10, "a10")], now_s=0)
    h.add(1, "m1", [(20, "b20")], now_s=0)
    out = h.release(0, now_s=0, flush=True)
    assert [p for _, p in out.hops] == ["b20", "a30", "a10"] and out.forced == 3
    assert sorted(out.done) == ["m0", "m1"] and not h.has_entries()


def test_max_hops_caps_one_release_and_the_rest_follows_in_order(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(1, "a"), (3, "c")], now_s=0)
    h.add(1, "m1", [(2, "b")], now_s=0)
    first = h.release(None, now_s=0, max_hops=2)
    second = h.release(None, now_s=0, max_hops=2)
    assert [p for _, p in first.hops] == ["a", "b"] and first.done == ["m1"]
    assert [p for _, p in second.hops] == ["c"] and second.done == ["m0"]


def test_a_release_given_back_is_released_again_the_same(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(10, "a10"), (30, "a30")], now_s=0)
    h.add(1, "m1", [(20, "b20")], now_s=0)
    h.add(1, "m2", [], now_s=0)
    h.add(2, "m3", [(5, "c5")], now_s=0)
    first = h.release(None, now_s=1)
    assert len(h) == 0 and not h.has_entries()
    h.give_back(first)
    assert len(h) == 4 and h.has_entries() and h.floor() == 5
    again = h.release(None, now_s=2)
    assert again.hops == [(2, "c5"), (0, "a10"), (1, "b20"), (0, "a30")]
    assert sorted(again.done) == ["m0", "m1", "m2", "m3"]


def test_a_partial_release_given_back_keeps_arrival_order_behind_the_rest(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(10, "a10"), (40, "a40")], now_s=0)
    h.add(0, "m1", [(15, "a15")], now_s=0)
    out = h.release(12, now_s=0)
    assert [x for _, x in out.hops] == ["a10"] and out.done == []
    h.add(0, "m2", [(5, "a5")], now_s=0)  # arrives after the failed release's hops
    h.give_back(out)
    out = h.release(None, now_s=0)
    assert [x for _, x in out.hops] == ["a10", "a40", "a15", "a5"] and out.done == ["m0", "m1", "m2"]
    assert len(h) == 0


def test_lanes_of_one_partition_go_lowest_time_first_each_in_arrival_order(make_hold) -> None:
    # One message carries two origins' spans, one after the other: a destination must not count
    # origin x's later seconds before origin y's earlier ones. Each lane keeps its order (x30
    # after x40: positions must rise per origin), and messages are done in arrival order.
    h = make_hold()
    h.add(0, "m0", [(10, "x10"), (40, "x40"), (30, "x30"), (15, "y15"), (35, "y35")], now_s=0,
          lanes=["x", "x", "x", "y", "y"])
    h.add(0, "m1", [(20, "y20")], now_s=0, lanes=["y"])
    out = h.release(None, now_s=0)
    assert [p for _, p in out.hops] == ["x10", "y15", "y35", "y20", "x40", "x30"]
    assert out.done == ["m0", "m1"] and len(h) == 0
    h.add(0, "m2", [(50, "x50"), (45, "y45")], now_s=0, lanes=["x", "y"])
    out = h.release(47, now_s=0)
    assert [p for _, p in out.hops] == ["y45"] and out.done == []  # m2 waits for its x50
    assert h.floor() == 50


def test_a_lane_emptied_then_begun_again_gets_its_given_back_hops_first(make_hold) -> None:
    h = make_hold()
    h.add(0, "m0", [(10, "x10"), (12, "y12")], now_s=0, lanes=["x", "y"])
    out = h.release(11, now_s=0)
    assert [p for _, p in out.hops] == ["x10"]
    h.add(0, "m1", [(5, "x5")], now_s=0, lanes=["x"])  # lane x was emptied: a new lane object
    h.give_back(out)
    assert len(h) == 3
    again = h.release(None, now_s=0)
    assert [p for _, p in again.hops] == ["x10", "x5", "y12"] and again.done == ["m0", "m1"]


def test_drop_with_lanes_forgets_exactly_the_other_generations_hops(make_hold) -> None:
    h = make_hold()
    h.add(0, "old", [(1, "a"), (2, "b")], now_s=0, generation=1, lanes=["x", "y"])
    h.add(0, "cur", [(3, "c"), (0, "d")], now_s=0, generation=2, lanes=["y", "x"])
    h.add(1, "gone", [(4, "e")], now_s=0, generation=2, lanes=["x"])
    assert h.drop(generation=2, keep={0}) == 3 and len(h) == 2
    out = h.release(None, now_s=0)
    assert [p for _, p in out.hops] == ["d", "c"] and out.done == ["cur"]
