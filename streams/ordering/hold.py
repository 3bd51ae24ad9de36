"""Hold hops until the event-time floor passes them, so an entity sees its events in time order.

A hop is applied to its entity (state updated, window features read, hop sent on) only once no
partition that could still bring that entity an earlier event is behind the hop's event time.
Without this, a DDoS target fed by source partitions on two workers scores the flows of the
side that arrives first against a window holding only that side's sources: one internal
message can carry a source partition's flows for minutes of event time (`streams.ordering.align`
bounds how far partitions drift apart, not how much event time one message spans). Holding
before applying, not after, also keeps later events out of a window read as of an earlier
time (a bucket holds everything within its width).

Hops are released per hop partition in arrival order (a hop's delivery position, which the
entity uses to recognise redeliveries, must keep rising per partition), across partitions
lowest event time first. The floor (`streams.ordering.align`) is the slowest backlogged partition
of any worker, and the lowest held hop of any other worker. A hop held `max_hold_s` (wall
clock) goes anyway: holding must never stall the pipeline. A held hop's input message is not
acknowledged, so a crash loses nothing: the message is delivered again. Pure: the worker feeds
this object, applies what it releases, and acknowledges an input message once all its hops
are out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HopHold", "Released"]


@dataclass(slots=True)
class _Entry:
    token: Any  # what to acknowledge once every hop of it is released (the input message)
    hops: list[tuple[int, Any]]  # (event time ms, payload), in arrival order
    since: float  # monotonic seconds it arrived
    generation: int
    next: int = 0


@dataclass(slots=True)
class Released:
    """One release round: payloads in release order, with their partitions; tokens now complete."""

    hops: list[tuple[Hashable, Any]] = field(default_factory=list)
    done: list[Any] = field(default_factory=list)
    forced: int = 0  # hops released by `max_hold_s`, `max_held` or a flush, not by the floor
    # What `HopHold.give_back` needs: the entry of each hop in `hops` (a reference, no tuple: this
    # runs per hop), and the entries popped as done, in the order taken.
    _entries: list[_Entry] = field(default_factory=list)
    _popped: list[tuple[Hashable, _Entry]] = field(default_factory=list)


class HopHold:
    """Hops read and not yet applied to their entity, per partition, in arrival order."""

    def __init__(self, *, slack_ms: int, max_hold_s: float, max_held: int) -> None:
        # Up to `slack_ms` above the floor may go: other workers report their floor a moment
        # late, and without slack the workers would take turns releasing a few hops each.
        self.slack_ms = slack_ms
        self.max_hold_s = max_hold_s
        self.max_held = max_held  # beyond this many held hops, the oldest go regardless (memory)
        self._parts: dict[Hashable, deque[_Entry]] = {}
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def has_entries(self) -> bool:
        """True while any input message is not yet done (held hops, or none left but not yet acknowledged)."""
        return bool(self._parts)

    def add(self, partition: Hashable, token: Any, hops: list[tuple[int, Any]], now_s: float,
            generation: int = 0) -> None:
        """Hold the hops of one input message (possibly none: its token is then done at the next release)."""
        self._parts.setdefault(partition, deque()).append(_Entry(token, hops, now_s, generation))
        self._held += len(hops)

    def floor(self) -> int | None:
        """The lowest event time of a hop that would be released next, over all partitions; None if none held."""
        low = None
        for q in self._parts.values():
            ts = _head_ts(q)
            if ts is not None and (low is None or ts < low):
                low = ts
        return low

    def release(self, floor_ms: int | None, now_s: float, *, flush: bool = False,
                max_hops: int | None = None) -> Released:
        """Release what the floor allows (None: no partition is behind, release all), lowest time first.

        `flush` releases everything, counted as forced (the worker is giving up its partitions).
        At most `max_hops` go per call (the worker applies a release as one batch).
        """
        out = Released()
        limit = None if floor_ms is None else floor_ms + self.slack_ms
        flushed = flush
        if flush:
            limit = None
        heap = []
        for part, q in self._parts.items():
            self._pop_done(q, out, part)
            ts = _head_ts(q)
            if ts is not None:
                heap.append((ts, id(q), part))
        heapq.heapify(heap)
        while heap and (max_hops is None or len(out.hops) < max_hops):
            i = 0
            ts, _, part = heap[0]
            if not (limit is None or ts <= limit or self._held > self.max_held):
                # The lowest may not go; a head held too long on another partition still does.
                late = [j for j, (_, _, p) in enumerate(heap) if now_s - self._parts[p][0].since >= self.max_hold_s]
                if not late:
                    break
                i = late[0]
                ts, _, part = heap[i]
            q = self._parts[part]
            entry = q[0]
            out.hops.append((part, entry.hops[entry.next][1]))
            out._entries.append(entry)
            out.forced += flushed or (limit is not None and ts > limit)
            entry.hops[entry.next] = (ts, None)  # the entry lives until its last hop goes; its payloads need not
            entry.next += 1
            self._held -= 1
            self._pop_done(q, out, part)
            nxt = _head_ts(q)
            if nxt is None:
                heap[i] = heap[-1]
                heap.pop()
            else:
                heap[i] = (nxt, id(q), part)
            heapq.heapify(heap)
        for part in [p for p, q in self._parts.items() if not q]:
            del self._parts[part]
        return out

    def give_back(self, out: Released) -> None:
        """Undo a release whose hops could not be applied: they are held again, in their places.

        Applying them again is safe: an entity recognises a hop it already counted by its
        delivery position, and sending a hop on twice gives a duplicate with the same event id.
        """
        for part, entry in reversed(out._popped):
            self._parts.setdefault(part, deque()).appendleft(entry)
        # An entry's hops go in index order within a release, so walking back restores them.
        for (_part, payload), entry in zip(reversed(out.hops), reversed(out._entries)):
            entry.next -= 1
            entry.hops[entry.next] = (entry.hops[entry.next][0], payload)
            self._held += 1
        out._entries.clear()
        out._popped.clear()

    def drop(self, *, generation: int, keep: set[Hashable] | None = None) -> int:
        """Forget entries of another consumer generation or of partitions not in `keep`; returns hops dropped.

        Their input messages were never acknowledged, so the seek that ends a rebalance
        delivers them again (to this worker or the partition's new owner).
        """
        dropped = 0
        for part in list(self._parts):
            q = self._parts[part]
            if keep is not None and part not in keep:
                gone = list(q)
                del self._parts[part]
            else:
                gone = [e for e in q if e.generation != generation]
                if gone:
                    self._parts[part] = deque(e for e in q if e.generation == generation)
            for e in gone:
                dropped += len(e.hops) - e.next
        self._held -= dropped
        return dropped

    @staticmethod
    def _pop_done(q: deque[_Entry], out: Released, part: Hashable) -> None:
        while q and q[0].next >= len(q[0].hops):
            entry = q.popleft()
            out.done.append(entry.token)
            out._popped.append((part, entry))


def _head_ts(q: deque[_Entry]) -> int | None:
    for e in q:  # entries with no hops left are popped at the next release; skip them here
        if e.next < len(e.hops):
            return e.hops[e.next][0]
    return None
