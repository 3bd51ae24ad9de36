"""The offset and stall watches that notice input a stage never received."""

from __future__ import annotations

from streams.faust.watch import OffsetWatch, StallWatch


def _feed(w: OffsetWatch, offsets: list[int], *, gen: int = 1, committed: int | None = None) -> list[int]:
    return [w.observe("hop", "t", 0, o, gen, committed) for o in offsets]


def test_in_order_offsets_have_no_holes() -> None:
    w = OffsetWatch()
    assert set(_feed(w, list(range(100, 200)), committed=100)) == {0}
    assert w.holes == 0


def test_skipped_offsets_are_counted_and_a_refetch_is_not_a_hole() -> None:
    w = OffsetWatch()
    assert _feed(w, [10, 11, 14, 15]) == [0, 0, 2, 0]  # 12 and 13 never came
    assert _feed(w, [12, 13, 14, 15, 16]) == [0, 0, 0, 0, 0]  # fetched again from 12
    assert w.holes == 2


def test_the_first_message_of_a_generation_is_checked_against_the_committed_offset() -> None:
    w = OffsetWatch()
    assert _feed(w, [5, 6, 7], gen=1) == [0, 0, 0]
    # A rebalance; the seek starts at the committed 40 (another worker did 8..39), the
    # stage first gets 42: 40 and 41 were lost after the seek.
    assert _feed(w, [42], gen=2, committed=40) == [2]
    # Unknown committed offset (a new group): nothing to compare with.
    assert _feed(w, [9], gen=3, committed=None) == [0]


def test_stages_and_partitions_are_followed_apart() -> None:
    w = OffsetWatch()
    assert w.observe("hop", "t", 0, 10, 1, None) == 0
    assert w.observe("hop", "t", 1, 50, 1, None) == 0
    assert w.observe("score", "u", 0, 7, 1, None) == 0
    assert w.observe("hop", "t", 0, 11, 1, None) == 0
    assert w.observe("hop", "t", 1, 52, 1, None) == 1


def test_each_hole_is_worth_one_refetch() -> None:
    w = OffsetWatch()
    assert w.first_time("t", 0, 12) and not w.first_time("t", 0, 12)
    assert w.first_time("t", 1, 12) and w.first_time("t", 0, 13)


# --- StallWatch ----------------------------------------------------------------------------------


def test_a_partition_behind_its_end_and_quiet_is_reported_once_per_spell() -> None:
    w = StallWatch(after_s=20)
    assert not w.stalled("hops", 0, 100, 103, now=0.0)  # the spell starts
    assert not w.stalled("hops", 0, 100, 103, now=19.0)
    assert w.stalled("hops", 0, 100, 103, now=20.0)
    assert not w.stalled("hops", 0, 100, 103, now=25.0)  # reported: a new spell starts
    assert w.stalled("hops", 0, 100, 103, now=40.0)


def test_progress_input_or_being_at_the_end_is_no_stall() -> None:
    w = StallWatch(after_s=20)
    assert not w.stalled("hops", 0, 100, 200, now=0.0)
    assert not w.stalled("hops", 0, 150, 200, now=30.0)  # committed moved: a new spell
    w.received("hops", 0, now=45.0)  # busy with it: not quiet
    assert not w.stalled("hops", 0, 150, 200, now=60.0)
    assert w.stalled("hops", 0, 150, 200, now=66.0)
    assert not w.stalled("hops", 1, 200, 200, now=0.0) and not w.stalled("hops", 1, 200, 200, now=99.0)
    assert not w.stalled("hops", 2, None, 5, now=0.0) and not w.stalled("hops", 2, None, 5, now=99.0)
    assert not w.stalled("hops", 3, 4, None, now=0.0) and not w.stalled("hops", 3, 4, None, now=99.0)


def test_reset_forgets_quiet_spells() -> None:
    w = StallWatch(after_s=20)
    w.stalled("score", 0, 1, 9, now=0.0)
    w.reset()  # a rebalance: the spell starts again afterwards
    assert not w.stalled("score", 0, 1, 9, now=30.0)
    assert w.stalled("score", 0, 1, 9, now=50.0)


def test_a_commit_held_back_by_one_unacknowledged_message_is_a_stall_even_while_input_flows() -> None:
    w = StallWatch(after_s=20.0)
    assert not w.stalled("flows.raw", 1, 2211, 10703, now=0.0, acked_above=True)
    for t in range(0, 20, 2):
        w.received("flows.raw", 1, now=float(t))  # later messages keep arriving and are acknowledged
    assert not w.stalled("flows.raw", 1, 2211, 10703, now=19.0, acked_above=True)
    assert w.stalled("flows.raw", 1, 2211, 10703, now=20.0, acked_above=True)
    # Without acknowledged offsets above the commit, input arriving means the stage is just busy.
    v = StallWatch(after_s=20.0)
    assert not v.stalled("hops", 0, 100, 200, now=0.0)
    v.received("hops", 0, now=15.0)
    assert not v.stalled("hops", 0, 100, 200, now=20.0)
