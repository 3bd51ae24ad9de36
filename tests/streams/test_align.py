"""The event-time aligner that keeps input partitions in step while a backlog is read."""

from __future__ import annotations

from streams._align import EventTimeAligner


def test_partitions_ahead_of_the_slowest_backlogged_one_are_paused() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("logs-0", 100_000)
    a.observe("flows-0", 125_000)  # within the skew
    a.observe("flows-1", 200_000)  # 100 s ahead
    assert a.ahead({"logs-0", "flows-0", "flows-1"}) == {"flows-1"}
    a.observe("logs-0", 180_000)  # the slowest moves on: flows-0 is now the floor
    assert a.ahead({"logs-0", "flows-0", "flows-1"}) == {"logs-0", "flows-1"}
    a.observe("flows-0", 175_000)  # caught up: everyone may read again
    assert a.ahead({"logs-0", "flows-0", "flows-1"}) == set()


def test_a_partition_at_its_end_or_never_read_holds_nobody_back() -> None:
    a = EventTimeAligner(max_skew_ms=30_000)
    a.observe("logs-0", 100_000)
    a.observe("flows-1", 500_000)
    assert a.ahead({"flows-1"}) == set()  # logs-0 has nothing left to read
    assert a.ahead({"flows-1", "flows-2"}) == set()  # flows-2 has no time yet
    assert a.ahead({"logs-0", "flows-1"}) == {"flows-1"}


def test_the_slowest_is_never_paused_and_time_never_goes_back() -> None:
    a = EventTimeAligner(max_skew_ms=1_000)
    for i, tp in enumerate("abcd"):
        a.observe(tp, 10_000 * (i + 1))
    a.observe("a", 5_000)  # an older event does not move the partition's time back
    paused = a.ahead(set("abcd"))
    assert "a" not in paused and paused == set("bcd")


def test_zero_skew_turns_alignment_off_and_forget_drops_revoked_partitions() -> None:
    off = EventTimeAligner(max_skew_ms=0)
    off.observe("a", 0)
    off.observe("b", 10**9)
    assert off.ahead({"a", "b"}) == set()
    a = EventTimeAligner(max_skew_ms=1)
    a.observe("a", 0)
    a.observe("b", 10**9)
    a.forget({"b"})
    assert a.ahead({"a", "b"}) == set()
