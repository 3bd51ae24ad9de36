"""Notice input a stage never received, so the worker can fetch it again.

faust-streaming hands each fetched message to the streams with
`wait_first(callback(message), suspend_flow.wait())` and advances its read offset whatever
wins. When flow is suspended (a rebalance starts, or table recovery runs after the seek to the
committed offsets) while a message waits for room in a stream's queue, the message is dropped
and nothing fetches it again. Our crash test saw this: a stage received offset N, then N+2.
Depending on faust's commit check, the partition then either stops committing for good (the
hole is never acked) or a later commit passes over it (the input is lost).

`OffsetWatch` is the pure part of the cure: it follows the offsets each stage receives and
says where to seek back to. Every hole gets one rewind; a hole still there after it is taken
as real (a compacted or transactional topic has holes by design).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OffsetWatch"]


@dataclass(slots=True)
class OffsetWatch:
    """Per (stage, topic, partition): the offset expected next, within one consumer generation."""

    _next: dict[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)  # -> (generation, offset)
    _rewound: set[tuple[str, int, int]] = field(default_factory=set)  # (topic, partition, offset)
    holes: int = 0  # offsets found missing (before any rewind fetched them)

    def observe(self, stage: str, topic: str, partition: int, offset: int, generation: int,
                committed: int | None) -> int | None:
        """Record a received offset; return the offset to seek back to when some were skipped.

        `committed` is the group's committed offset for the partition, the baseline for the
        first message of a new generation (the seek after a rebalance starts there).
        """
        key = (stage, topic, partition)
        seen = self._next.get(key)
        want = seen[1] if seen is not None and seen[0] == generation else committed
        self._next[key] = (generation, offset + 1)
        if want is None or offset <= want:
            return None  # in order, or a re-fetch from further back
        self.holes += offset - want
        if (topic, partition, want) in self._rewound:
            return None  # rewound once already: the hole is real
        self._rewound.add((topic, partition, want))
        if len(self._rewound) > 100_000:  # bounded: only the recent holes matter
            self._rewound.clear()
        return want
