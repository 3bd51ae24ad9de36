"""Keep input partitions in step on event time while a worker reads a backlog.

Faust reads its partitions at the same pace in messages, not in event time. Partitions of
unequal size then drift apart in event time as a backlog is read (measured: minutes within a
million-event backlog), and an entity fed from a partition that is behind sees its events
arrive after the entity's watermark has moved on: they are counted as late, or not at all,
and verdicts change. `EventTimeAligner` names the partitions to pause so that none runs more
than `max_skew_ms` ahead of the slowest partition that still has messages to read (Flink
calls this watermark alignment). Pure: the ingest agent feeds it and pauses the consumer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

__all__ = ["EventTimeAligner"]


@dataclass(slots=True)
class EventTimeAligner:
    """Per input partition: the latest event time read; which partitions are too far ahead."""

    max_skew_ms: int
    _time: dict[Hashable, int] = field(default_factory=dict)

    def observe(self, tp: Hashable, ts_ms: int) -> None:
        """An event of partition `tp` with event time `ts_ms` was read."""
        if ts_ms > self._time.get(tp, ts_ms - 1):
            self._time[tp] = ts_ms

    def forget(self, keep: Iterable[Hashable]) -> None:
        """Drop partitions not in `keep` (revoked)."""
        keep = set(keep)
        for tp in [tp for tp in self._time if tp not in keep]:
            del self._time[tp]

    def ahead(self, backlogged: Iterable[Hashable]) -> set[Hashable]:
        """The partitions to pause: more than `max_skew_ms` ahead of the slowest backlogged one.

        Only partitions with messages left to read (`backlogged`) and a known event time take
        part: a partition at its end must not hold the others back, and one not read yet has
        no time to compare. The slowest is never paused, so reading always goes on.
        """
        if self.max_skew_ms <= 0:
            return set()
        times = {tp: self._time[tp] for tp in backlogged if tp in self._time}
        if len(times) < 2:
            return set()
        floor = min(times.values())
        return {tp for tp, t in times.items() if t > floor + self.max_skew_ms}
