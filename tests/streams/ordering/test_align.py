"""The event-time aligner that keeps input partitions in step while a backlog is read."""

from __future__ import annotations

from streams.ordering.align import EventTimeAligner, WatermarkBoard


def test_partitions_ahead_of_the_slowest_backlogged_one_are_paused() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("logs-0", 100_000)
    a.observe("flows-0", 125_000)  # within the skew
    a.observe("flows-1", 200_000)  # 100 s ahead
    assert a.ahead({"logs-0", "flows-0", "flows-1"}, 0.0) == {"flows-1"}
    a.observe("logs-0", 180_000)  # the slowest moves on: flows-0 is now the floor
    assert a.floor({"logs-0", "flows-0", "flows-1"}, 0.0) == 125_000
    assert a.ahead({"logs-0", "flows-0", "flows-1"}, 0.0) == {"logs-0", "flows-1"}
    a.observe("flows-0", 175_000)  # caught up: everyone may read again
    assert a.ahead({"logs-0", "flows-0", "flows-1"}, 0.0) == set()


def test_a_partition_at_its_end_holds_nobody_back() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("logs-0", 100_000)
    a.observe("flows-1", 500_000)
    assert a.ahead({"flows-1"}, 0.0) == set()  # logs-0 has nothing left to read
    assert a.ahead({"logs-0", "flows-1"}, 0.0) == {"flows-1"}


def test_a_partition_not_read_yet_holds_everything_back_for_a_while() -> None:
    # Otherwise the first partition fetched races through its backlog (measured: a whole
    # partition of the two-worker test before any other had a time).
    a = EventTimeAligner(max_skew_ms=30_000, stuck_after_s=10.0)
    a.observe("flows-1", 500_000)
    assert a.floor({"flows-1", "flows-2"}, 0.0) == -1
    assert a.ahead({"flows-1", "flows-2"}, 0.0) == {"flows-1"}
    assert a.ahead({"flows-1", "flows-2"}, 5.0) == {"flows-1"}
    # Nothing from flows-2 for 10 s (junk only, or not fetched): it stops holding back.
    assert a.ahead({"flows-1", "flows-2"}, 10.5) == set()
    a.observe("flows-2", 400_000)
    assert a.ahead({"flows-1", "flows-2"}, 11.0) == {"flows-1"}


def test_the_slowest_is_never_paused_and_time_never_goes_back() -> None:
    a = EventTimeAligner(max_skew_ms=1_000)
    for i, tp in enumerate("abcd"):
        a.observe(tp, 10_000 * (i + 1))
    a.observe("a", 5_000)  # an older event does not move the partition's time back
    paused = a.ahead(set("abcd"), 0.0)
    assert "a" not in paused and paused == set("bcd")


def test_zero_skew_turns_alignment_off_and_forget_drops_revoked_partitions() -> None:
    off = EventTimeAligner(max_skew_ms=0)
    off.observe("a", 0)
    off.observe("b", 10**9)
    assert off.ahead({"a", "b"}, 0.0, elsewhere=0) == set()
    a = EventTimeAligner(max_skew_ms=1)
    a.observe("a", 0)
    a.observe("b", 10**9)
    a.forget({"b"})
    assert a.floor({"a", "b"}, 0.0) == -1  # "a" has no time any more: as if never read


def test_a_slow_hop_partition_holds_back_raw_input_but_is_never_paused_itself() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("raw-0", 200_000)
    a.observe("raw-1", 120_000)
    a.observe("hops-2", 100_000)  # the DDoS target's partition, behind
    raw = {"raw-0", "raw-1"}
    assert a.ahead({"raw-0", "raw-1", "hops-2"}, 0.0, pausable=raw) == {"raw-0"}
    # Every raw partition may be paused when the floor is a hop partition's.
    a.observe("raw-1", 140_000)
    assert a.ahead({"raw-0", "raw-1", "hops-2"}, 0.0, pausable=raw) == {"raw-0", "raw-1"}
    # A hop partition at its end holds nobody back.
    assert a.ahead({"raw-0", "raw-1"}, 0.0, pausable=raw) == {"raw-0"}


def test_another_workers_floor_holds_this_worker_back() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("raw-0", 200_000)
    a.observe("raw-1", 210_000)
    assert a.ahead({"raw-0", "raw-1"}, 0.0) == set()
    # The other worker is still at 150 s: this one reads nothing past 180 s.
    assert a.ahead({"raw-0", "raw-1"}, 0.0, elsewhere=150_000) == {"raw-0", "raw-1"}
    assert a.ahead({"raw-0", "raw-1"}, 0.0, elsewhere=175_000) == {"raw-1"}
    # A floor from elsewhere above this worker's own changes nothing.
    assert a.ahead({"raw-0", "raw-1"}, 0.0, elsewhere=10**9) == set()
    # Live (not backlogged) input is never held back.
    assert a.ahead(set(), 0.0, elsewhere=0) == set()


def test_a_partition_whose_time_stops_moving_stops_holding_others_back() -> None:
    a = EventTimeAligner(max_skew_ms=30_000, stuck_after_s=10.0)
    a.observe("slow", 100_000)
    a.observe("fast", 200_000)
    assert a.ahead({"slow", "fast"}, 0.0) == {"fast"}
    assert a.ahead({"slow", "fast"}, 9.0) == {"fast"}
    # 11 s without moving: "slow" no longer counts ("fast", paused, has not moved either).
    assert a.floor({"slow", "fast"}, 11.0) is None
    assert a.ahead({"slow", "fast"}, 11.0) == set()
    a.observe("fast", 201_000)
    assert a.floor({"slow", "fast"}, 11.5) == 201_000
    a.observe("slow", 110_000)  # it moves again: it holds back again
    assert a.ahead({"slow", "fast"}, 12.0) == {"fast"}


def test_the_board_keeps_other_workers_recent_floors_only() -> None:
    b = WatermarkBoard("me", fresh_s=5.0)
    assert b.floor(0.0) is None
    b.receive("me", 1, 0.0)  # our own report, read back from the topic
    b.receive("w1", 300_000, 0.0)
    b.receive("w2", 200_000, 1.0)
    b.receive("w3", None, 1.0)  # no backlog
    assert b.floor(2.0) == 200_000
    b.receive("w2", 250_000, 2.0)  # a later report replaces the earlier one
    assert b.floor(3.0) == 250_000
    assert b.floor(6.5) == 250_000  # w1 is silent for 6.5 s: gone
    b.receive("w2", None, 6.5)
    assert b.floor(7.0) is None
