"""The offset watch that finds input a stage never received."""

from __future__ import annotations

from streams._offsets import OffsetWatch


def _feed(w: OffsetWatch, offsets: list[int], *, gen: int = 1, committed: int | None = None) -> list[int]:
    return [b for o in offsets if (b := w.observe("hop", "t", 0, o, gen, committed)) is not None]


def test_in_order_offsets_need_no_rewind() -> None:
    w = OffsetWatch()
    assert _feed(w, list(range(100, 200)), committed=100) == []
    assert w.holes == 0


def test_a_skipped_offset_is_fetched_again_once_then_taken_as_real() -> None:
    w = OffsetWatch()
    assert _feed(w, [10, 11, 13, 14]) == [12]  # 12 never came: seek back to it
    assert w.holes == 1
    # The re-fetch starts at 12, goes over 13-14 again (duplicates) and on.
    assert _feed(w, [12, 13, 14, 15]) == []
    # The same hole again after the rewind (a compacted topic): accepted, no second seek.
    assert _feed(w, [11, 13]) == []
    assert w.holes == 2


def test_the_first_message_of_a_generation_is_checked_against_the_committed_offset() -> None:
    w = OffsetWatch()
    assert _feed(w, [5, 6, 7], gen=1) == []
    # A rebalance; the seek starts at the committed 40 (another worker did 8..39), the
    # stage first gets 42: 40 and 41 were dropped after the seek.
    assert _feed(w, [42], gen=2, committed=40) == [40]
    # Unknown committed offset (a new group): nothing to compare with.
    assert _feed(w, [9], gen=3, committed=None) == []


def test_stages_and_partitions_are_followed_apart() -> None:
    w = OffsetWatch()
    assert w.observe("hop", "t", 0, 10, 1, None) is None
    assert w.observe("hop", "t", 1, 50, 1, None) is None
    assert w.observe("score", "u", 0, 7, 1, None) is None
    assert w.observe("hop", "t", 0, 11, 1, None) is None
    assert w.observe("hop", "t", 1, 52, 1, None) == 51
