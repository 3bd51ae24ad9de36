"""Notice input a stage never received.

A stage's input topics are ours: produced without transactions or compaction, so their
offsets have no holes. Offset N+k after N-1 within one consumer generation means messages
were lost between fetch and stage; faust 0.15.3's fetch loop did this around rebalances
(`streams.faust.fixes`, fix 3). `OffsetWatch` is the pure check behind the
`streamguard_offset_gaps_total` alarm; the worker has the fetch loop seek back once per hole.

A hole at the end of a partition has no later message to reveal it: `StallWatch` notices a
partition whose committed offset stays behind its end while its stage receives nothing of it,
or while later offsets are acknowledged and the committed one is not (the only check for raw
input topics, which may have holes by design that faust's commit steps over).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OffsetWatch", "StallWatch"]


@dataclass(slots=True)
class OffsetWatch:
    """Per (stage, topic, partition): the offset expected next, within one consumer generation."""

    _next: dict[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)  # -> (generation, offset)
    _reported: set[tuple[str, int, int]] = field(default_factory=set)
    holes: int = 0  # offsets found missing so far

    def first_time(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time a hole starting at `offset` is seen: worth one re-fetch, not a loop."""
        key = (topic, partition, offset)
        if key in self._reported:
            return False
        if len(self._reported) >= 100_000:  # bounded: only recent holes matter
            self._reported.clear()
        self._reported.add(key)
        return True

    def observe(self, stage: str, topic: str, partition: int, offset: int, generation: int,
                committed: int | None) -> int:
        """Record a received offset; return how many offsets before it were skipped (0 when none).

        `committed` is the group's committed offset for the partition, the baseline for the
        first message of a new generation (the seek after a rebalance starts there). A jump
        back is a re-fetch and restarts the count.
        """
        key = (stage, topic, partition)
        seen = self._next.get(key)
        want = seen[1] if seen is not None and seen[0] == generation else committed
        self._next[key] = (generation, offset + 1)
        if want is None or offset <= want:
            return 0
        self.holes += offset - want
        return offset - want


@dataclass(slots=True)
class StallWatch:
    """Per (topic, partition): is it behind its end with nothing committed or received for `after_s`?"""

    after_s: float = 20.0
    _since: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)  # -> (committed, since)
    _last_input: dict[tuple[str, int], float] = field(default_factory=dict)

    def received(self, topic: str, partition: int, now: float) -> None:
        """The stage got a message of this partition at `now` (monotonic seconds)."""
        self._last_input[(topic, partition)] = now

    def reset(self) -> None:
        """Forget all quiet spells (a rebalance or recovery is not a stall)."""
        self._since.clear()

    def stalled(self, topic: str, partition: int, committed: int | None, end: int | None, now: float,
                acked_above: bool = False) -> bool:
        """True once per quiet spell of `after_s` while `committed < end`; the spell then starts over.

        `acked_above`: later offsets are acknowledged while the committed one is not. Then the
        message at the committed offset is lost between fetch and stage (it holds every later
        commit back), and input still arriving does not make it less of a stall.
        """
        key = (topic, partition)
        if committed is None or end is None or committed >= end:
            self._since.pop(key, None)
            return False
        prev = self._since.get(key)
        if prev is None or prev[0] != committed:
            self._since[key] = (committed, now)
            return False
        quiet_from = prev[1] if acked_above else max(prev[1], self._last_input.get(key, prev[1]))
        if now - quiet_from < self.after_s:
            return False
        self._since[key] = (committed, now)
        return True
