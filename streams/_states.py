"""Decoded entity states of recently updated entities, so a busy entity is not decoded every batch.

The entity table holds packed states (`EntityState.pack`); a batch decodes the ones it
touches. A busy entity (a DDoS target, a popular server) is touched by almost every batch,
and its state is the largest (hundreds of buckets). Its decoded object is kept here beside
the exact bytes it was packed to, and reused only while the table still holds those very
bytes: a changelog recovery, an expiry or another write replaces them and the entry no
longer applies. A state reused after a failed batch was mutated in place, but its counts
and its applied-input marks moved together, so the redelivered inputs are skipped as
duplicates, as they would be by the state the batch would have written.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["DecodedStates"]


class DecodedStates:
    """(key -> packed bytes, decoded state) up to `max_bytes` of packed size, least recently used dropped first.

    The budget is in packed bytes because state sizes vary by orders of magnitude (a quiet
    source packs to ~0.4 KiB, a DDoS target to ~100 KiB); live objects take ~5x their packed size.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[bytes, Any]] = OrderedDict()

    def get(self, key: bytes, packed: bytes | None) -> Any | None:
        """The decoded state of `key` if it was decoded from exactly `packed` (the table's value)."""
        entry = self._entries.get(key)
        if entry is None or packed is None or entry[0] is not packed:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes, packed: bytes, state: Any) -> None:
        """Remember that `state` is `key`'s value `packed`, as just written to the table."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old[0])
        self._entries[key] = (packed, state)
        self.bytes += len(packed)
        while self.bytes > self.max_bytes and self._entries:
            _, (dropped, _) = self._entries.popitem(last=False)
            self.bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)
