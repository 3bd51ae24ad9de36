"""Per-entity rolling windows on event time: bucketed counters, distinct counters, moments.

All state is plain data (`snapshot()` / `restore()`), so a Faust table can hold it and a
changelog can rebuild it. Nothing here reads a clock: time is always the event's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BucketCounter", "DistinctCounter", "Moments", "WindowConfig", "value_key"]


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Time rules shared by all windows of an entity."""

    # Events older than the entity's watermark minus this are not counted. Generous, because
    # a worker catching up reads partitions at different paces: one entity's events then
    # arrive minutes out of event-time order, and every window here is order-insensitive.
    allowed_lateness_ms: int = 300_000
    idle_ttl_ms: int = 15 * 60_000  # an entity unseen this long (event time) may be dropped
    distinct_cap: int = 2048  # at most this many values tracked per distinct counter

    def idle(self, last_seen_ms: int, now_ms: int) -> bool:
        """True when an entity last seen at `last_seen_ms` has been idle (event time) past the TTL."""
        return now_ms - last_seen_ms > self.idle_ttl_ms


class BucketCounter:
    """Sum of values in fixed-width time buckets; totals over any span up to its horizon."""

    __slots__ = ("width_ms", "horizon_ms", "_buckets")

    def __init__(self, width_ms: int, horizon_ms: int) -> None:
        self.width_ms = width_ms
        self.horizon_ms = horizon_ms
        self._buckets: dict[int, float] = {}

    def add(self, ts_ms: int, value: float = 1.0) -> None:
        b = ts_ms // self.width_ms
        self._buckets[b] = self._buckets.get(b, 0.0) + value

    def total(self, now_ms: int, span_ms: int) -> float:
        """Sum over buckets overlapping (now - span, now]."""
        hi = now_ms // self.width_ms
        lo = (now_ms - span_ms) // self.width_ms + 1
        return sum(v for b, v in self._buckets.items() if lo <= b <= hi)

    def prune(self, now_ms: int) -> None:
        lo = (now_ms - self.horizon_ms) // self.width_ms
        for b in [b for b in self._buckets if b < lo]:
            del self._buckets[b]

    def snapshot(self) -> list[list[float]]:
        return [[b, v] for b, v in sorted(self._buckets.items())]

    def restore(self, data: list[list[float]]) -> None:
        self._buckets = {int(b): float(v) for b, v in data}

    def __len__(self) -> int:
        return len(self._buckets)


def value_key(value: str) -> int:
    """A distinct value as a stable 64-bit number: what a distinct window keeps instead of the value.

    Values are client-chosen (paths, user names) and may be kilobytes long; a window of 2,048
    such values kept verbatim packed to over 4 MB. The hash is the same on every worker and
    across restarts (unlike `hash()`); two values colliding in 64 bits count once.
    """
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


class DistinctCounter:
    """Distinct values seen in a window, each with its first and last time seen; bounded by a cap.

    Keeping both times makes counts insensitive to arrival order: a value seen at 10:05 and
    then (arriving late) at 10:01 still counts for a window ending 10:02. Values are kept as
    64-bit hashes (`value_key`), so a window's size does not depend on what the client wrote.
    """

    __slots__ = ("window_ms", "cap", "_seen")

    def __init__(self, window_ms: int, cap: int) -> None:
        self.window_ms = window_ms
        self.cap = cap
        self._seen: dict[int, list[int]] = {}

    def add(self, ts_ms: int, value: str) -> None:
        value = value_key(value)
        span = self._seen.get(value)
        if span is None:
            if len(self._seen) >= self.cap:
                # Saturated: forget the stalest value. The count stays at the cap, which already
                # marks the entity as extreme; exactness beyond it buys nothing.
                stalest = min(self._seen, key=lambda v: self._seen[v][1])
                del self._seen[stalest]
            self._seen[value] = [ts_ms, ts_ms]
        elif ts_ms < span[0]:
            span[0] = ts_ms
        elif ts_ms > span[1]:
            span[1] = ts_ms

    def count(self, now_ms: int, span_ms: int | None = None) -> int:
        """Values seen at or before `now` and not only before the window (now - span, now]."""
        lo = now_ms - (span_ms or self.window_ms)
        return sum(1 for first, last in self._seen.values() if first <= now_ms and last > lo)

    def prune(self, now_ms: int) -> None:
        lo = now_ms - self.window_ms
        for v in [v for v, (_, last) in self._seen.items() if last <= lo]:
            del self._seen[v]

    def snapshot(self) -> list[list[Any]]:
        return [[v, first, last] for v, (first, last) in sorted(self._seen.items())]

    def restore(self, data: list[list[Any]]) -> None:
        # Snapshots written before values were hashed hold the values themselves.
        self._seen = {(row[0] if isinstance(row[0], int) else value_key(str(row[0]))): [int(row[1]), int(row[-1])]
                      for row in data}

    def __len__(self) -> int:
        return len(self._seen)


class Moments:
    """Count, mean and standard deviation of a value over a window, from bucketed sums."""

    __slots__ = ("_n", "_s", "_ss")

    def __init__(self, width_ms: int, horizon_ms: int) -> None:
        self._n = BucketCounter(width_ms, horizon_ms)
        self._s = BucketCounter(width_ms, horizon_ms)
        self._ss = BucketCounter(width_ms, horizon_ms)

    def add(self, ts_ms: int, x: float) -> None:
        self._n.add(ts_ms)
        self._s.add(ts_ms, x)
        self._ss.add(ts_ms, x * x)

    def stats(self, now_ms: int, span_ms: int) -> tuple[float, float, float]:
        """(count, mean, std) over the span; mean and std are 0 when empty."""
        n = self._n.total(now_ms, span_ms)
        if n <= 0:
            return 0.0, 0.0, 0.0
        mean = self._s.total(now_ms, span_ms) / n
        var = self._ss.total(now_ms, span_ms) / n - mean * mean
        if not math.isfinite(mean) or not math.isfinite(var):
            return n, 0.0, 0.0  # only a value no parser lets through could overflow the sums
        return n, mean, math.sqrt(max(var, 0.0))

    def prune(self, now_ms: int) -> None:
        self._n.prune(now_ms)
        self._s.prune(now_ms)
        self._ss.prune(now_ms)

    def snapshot(self) -> list[list[list[float]]]:
        return [self._n.snapshot(), self._s.snapshot(), self._ss.snapshot()]

    def restore(self, data: list[list[list[float]]]) -> None:
        self._n.restore(data[0])
        self._s.restore(data[1])
        self._ss.restore(data[2])

    def __len__(self) -> int:
        return len(self._n)
