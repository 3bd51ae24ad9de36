"""Keep input partitions in step on event time while a backlog is read, across stages and workers.

Faust reads its partitions at the same pace in messages, not in event time. Partitions of
unequal size then drift apart in event time as a backlog is read (measured: minutes within a
million-event backlog), and an entity fed from a partition that is behind sees its events
arrive after the entity's watermark has moved on: they are counted as late, or not at all,
and verdicts change. The same happens one stage later: a busy hop partition (a DDoS target's)
falls behind the others, and with two workers each races through its own half of the input.
A destination's distinct-source count is then built from one side's flows before the other
side's arrive, and attackers on the side that arrives first are scored against a half-empty
window. (Alignment bounds the drift between partitions; `streams.ordering.hold` then orders what
reaches each entity, which alignment alone cannot do when one message spans minutes.)

So ingest reads no raw partition more than `max_skew_ms` ahead of the *floor*: the event time
of the slowest partition, raw or hop, that still has messages to read, on this worker or on
any other (Flink calls this watermark alignment), or of the lowest hop a worker holds. Each
worker tells the others its own floor (`WatermarkBoard`). Pure: the worker feeds these
objects and pauses its consumer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

__all__ = ["EventTimeAligner", "WatermarkBoard"]


@dataclass(slots=True)
class EventTimeAligner:
    """Per partition: the latest event time read; the floor; which partitions are too far ahead."""

    max_skew_ms: int
    # A backlogged partition whose time has not moved this long (stuck, paused by someone
    # else, or all one timestamp) stops holding the others back: alignment must never stall input.
    stuck_after_s: float = 10.0
    _time: dict[Hashable, int] = field(default_factory=dict)
    _moved: dict[Hashable, tuple[int | None, float]] = field(default_factory=dict)  # -> (time, when it last moved)

    def observe(self, tp: Hashable, ts_ms: int) -> None:
        """An event of partition `tp` with event time `ts_ms` was read."""
        if ts_ms > self._time.get(tp, ts_ms - 1):
            self._time[tp] = ts_ms

    def forget(self, keep: Iterable[Hashable]) -> None:
        """Drop partitions not in `keep` (revoked)."""
        keep = set(keep)
        for tp in [tp for tp in {*self._time, *self._moved} if tp not in keep]:
            self._time.pop(tp, None)
            self._moved.pop(tp, None)

    def floor(self, backlogged: Iterable[Hashable], now_s: float) -> int | None:
        """Event time of the slowest partition with messages left to read and still moving.

        A partition at its end must not hold the others back, nor one whose time has not moved
        for `stuck_after_s`. One not read yet holds everything back (floor -1), for up to
        `stuck_after_s`: otherwise the first partition to be fetched races through its backlog
        before the others have a time to compare with.
        """
        low = None
        for tp in backlogged:
            t = self._time.get(tp)
            seen = self._moved.get(tp)
            if seen is None or seen[0] != t:
                self._moved[tp] = seen = (t, now_s)
            if now_s - seen[1] > self.stuck_after_s:
                continue
            if t is None:
                t = -1
            if low is None or t < low:
                low = t
        return low

    def ahead(self, backlogged: Iterable[Hashable], now_s: float, *, pausable: Iterable[Hashable] | None = None,
              elsewhere: int | None = None) -> set[Hashable]:
        """The partitions to pause: backlogged, `pausable`, more than `max_skew_ms` above the floor.

        The floor is the lower of this worker's (over every backlogged partition given) and
        `elsewhere` (other workers'). Only backlogged partitions are paused: live input is never
        held back. The slowest here is never paused, so this worker's reading goes on unless
        another worker is slower still, and that one's slowest is never paused by its owner.
        """
        if self.max_skew_ms <= 0:
            return set()
        backlogged = set(backlogged)
        low = self.floor(backlogged, now_s)
        if elsewhere is not None and (low is None or elsewhere < low):
            low = elsewhere
        if low is None:
            return set()
        limit = low + self.max_skew_ms
        candidates = backlogged if pausable is None else backlogged.intersection(pausable)
        return {tp for tp in candidates if self._time.get(tp, limit) > limit}


@dataclass(slots=True)
class WatermarkBoard:
    """The floors other workers report (see `EventTimeAligner.floor`); the lowest recent one."""

    me: str
    fresh_s: float = 5.0  # a worker silent this long (gone, or rebalancing) holds nobody back
    _floors: dict[str, tuple[int | None, float]] = field(default_factory=dict)

    def receive(self, worker: str, floor_ms: int | None, now_s: float) -> None:
        """Worker `worker` reported `floor_ms` (None: it has no backlog) at `now_s`."""
        if worker != self.me:
            self._floors[worker] = (floor_ms, now_s)

    def floor(self, now_s: float) -> int | None:
        """The lowest floor reported by another worker within `fresh_s`; None if there is none."""
        low = None
        for worker, (f, at) in list(self._floors.items()):
            if now_s - at > self.fresh_s:
                del self._floors[worker]
            elif f is not None and (low is None or f < low):
                low = f
        return low
