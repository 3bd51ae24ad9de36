"""The cache of decoded entity states beside the packed bytes the table holds."""

from __future__ import annotations

from streams.agents.states import DecodedStates


def test_a_state_is_reused_only_for_the_very_bytes_it_was_packed_to() -> None:
    c = DecodedStates(max_bytes=1000)
    packed = bytes([1]) + b"state-a"
    c.put(b"k", packed, "A")
    assert c.get(b"k", packed) == "A"
    # Equal but not the same object: the table's value was replaced (recovered from the
    # changelog, say), so the decoded object may be stale.
    assert c.get(b"k", bytes([1]) + b"state-a") is None
    assert c.get(b"k", None) is None  # expired from the table
    assert c.get(b"other", packed) is None


def test_the_least_recently_used_entries_leave_first_when_over_the_byte_budget() -> None:
    c = DecodedStates(max_bytes=250)
    a, b, d = b"\x01" + b"a" * 99, b"\x01" + b"b" * 99, b"\x01" + b"d" * 99
    c.put(b"a", a, "A")
    c.put(b"b", b, "B")
    assert c.get(b"a", a) == "A"  # a is now the most recent
    c.put(b"d", d, "D")
    assert len(c) == 2 and c.bytes == 200
    assert c.get(b"b", b) is None and c.get(b"a", a) == "A" and c.get(b"d", d) == "D"
    a2 = b"\x01" + b"A" * 19  # a rewritten, smaller: counted once, at its new size
    c.put(b"a", a2, "A2")
    assert c.bytes == 120 and c.get(b"a", a) is None and c.get(b"a", a2) == "A2"
    c.put(b"huge", b"\x01" * 1000, "H")  # bigger than the budget on its own: not kept
    assert len(c) == 0 and c.bytes == 0
