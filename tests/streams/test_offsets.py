"""The offset watch that notices input a stage never received."""

from __future__ import annotations

from streams._offsets import OffsetWatch


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
