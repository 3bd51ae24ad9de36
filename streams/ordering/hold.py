"""Hold hops until the event-time floor passes them, so an entity sees its events in time order.

A hop is applied to its entity (state updated, window features read, hop sent on) only once no
partition that could still bring that entity an earlier event is behind the hop's event time.
Without this, a DDoS target fed by source partitions on two workers scores the flows of the
side that arrives first against a window holding only that side's sources: one internal
message can carry a source partition's flows for minutes of event time (`streams.ordering.align`
bounds how far partitions drift apart, not how much event time one message spans). Holding
before applying, not after, also keeps later events out of a window read as of an earlier
time (a bucket holds everything within its width).

Within a partition, hops go per lane in arrival order, across lanes lowest event time first. A
lane is where a hop's delivery position comes from (its origin: a raw partition, or a hop
partition and that partition's lane): the entity uses the position to recognise redeliveries,
so it must keep rising per lane, not per partition. One message can carry minutes of one
origin before another's; released in arrival order, a destination would count the first
origin's minutes before the second's earlier ones. Without lanes, a partition is one lane.
The floor (`streams.ordering.align`) is the slowest backlogged partition of any worker, and the
lowest held hop of any other worker. A hop held `max_hold_s` (wall clock) goes anyway: holding
must never stall the pipeline. A held hop's input message is not acknowledged, so a crash loses
nothing: the message is delivered again; messages are done in arrival order per partition.
Pure: the worker feeds this object, applies what it releases, and acknowledges an input message
once all its hops are out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HopHold", "Released"]


@dataclass(slots=True)
class _Entry:
    token: Any  # what to acknowledge once every hop of it is released (the input message)
    since: float  # monotonic seconds it arrived
    generation: int
    left: int  # hops not released yet


@dataclass(slots=True)
class _Hop:
    ts: int
    payload: Any
    entry: _Entry


@dataclass(slots=True)
class _Lane:
    seq: int  # creation order: breaks ties between lanes the same way every time
    key: tuple[Hashable, Hashable]  # (partition, lane)
    hops: deque[_Hop] = field(default_factory=deque)


@dataclass(slots=True)
class Released:
    """One release round: payloads in release order, with their partitions; tokens now complete."""

    hops: list[tuple[Hashable, Any]] = field(default_factory=list)
    done: list[Any] = field(default_factory=list)
    forced: int = 0  # hops released by `max_hold_s`, `max_held` or a flush, not by the floor
    # What `HopHold.give_back` needs: the lane and hop of each hop in `hops`, and the entries
    # popped as done, in the order taken.
    _taken: list[tuple[_Lane, _Hop]] = field(default_factory=list)
    _popped: list[tuple[Hashable, _Entry]] = field(default_factory=list)


class HopHold:
    """Hops read and not yet applied to their entity: per partition and lane, in arrival order."""

    def __init__(self, *, slack_ms: int, max_hold_s: float, max_held: int) -> None:
        # Up to `slack_ms` above the floor may go: other workers report their floor a moment
        # late, and without slack the workers would take turns releasing a few hops each.
        self.slack_ms = slack_ms
        self.max_hold_s = max_hold_s
        self.max_held = max_held  # beyond this many held hops, the oldest go regardless (memory)
        self._msgs: dict[Hashable, deque[_Entry]] = {}  # per partition, arrival order: acknowledged in it
        self._lanes: dict[tuple[Hashable, Hashable], _Lane] = {}
        self._seq = 0
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def has_entries(self) -> bool:
        """True while any input message is not yet done (held hops, or none left but not yet acknowledged)."""
        return bool(self._msgs)

    def add(self, partition: Hashable, token: Any, hops: list[tuple[int, Any]], now_s: float,
            generation: int = 0, lanes: Sequence[Hashable] | None = None) -> None:
        """Hold the hops of one input message (possibly none: its token is then done at the next release).

        `lanes[i]` is hop i's lane (its delivery origin); None: one lane per partition.
        """
        entry = _Entry(token, now_s, generation, len(hops))
        self._msgs.setdefault(partition, deque()).append(entry)
        for i, (ts, payload) in enumerate(hops):
            key = (partition, None if lanes is None else lanes[i])
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(self._seq, key)
                self._seq += 1
            lane.hops.append(_Hop(ts, payload, entry))
        self._held += len(hops)

    def floor(self) -> int | None:
        """The lowest event time of a hop that would be released next, over all partitions; None if none held."""
        return min((lane.hops[0].ts for lane in self._lanes.values() if lane.hops), default=None)

    def release(self, floor_ms: int | None, now_s: float, *, flush: bool = False,
                max_hops: int | None = None) -> Released:
        """Release what the floor allows (None: no partition is behind, release all), lowest time first.

        `flush` releases everything, counted as forced (the worker is giving up its partitions).
        At most `max_hops` go per call (the worker applies a release as one batch).
        """
        out = Released()
        limit = None if flush or floor_ms is None else floor_ms + self.slack_ms
        for part in list(self._msgs):
            self._pop_done(part, out)
        heap = [(lane.hops[0].ts, lane.seq, lane) for lane in self._lanes.values() if lane.hops]
        heapq.heapify(heap)
        while heap and (max_hops is None or len(out.hops) < max_hops):
            i = 0
            ts, _, lane = heap[0]
            if not (limit is None or ts <= limit or self._held > self.max_held):
                # The lowest may not go; a head held too long in another lane still does.
                late = [j for j, (_, _, ln) in enumerate(heap) if now_s - ln.hops[0].entry.since >= self.max_hold_s]
                if not late:
                    break
                i = late[0]
                ts, _, lane = heap[i]
            hop = lane.hops.popleft()
            part = lane.key[0]
            out.hops.append((part, hop.payload))
            out._taken.append((lane, hop))
            out.forced += flush or (limit is not None and ts > limit)
            hop.entry.left -= 1
            self._held -= 1
            self._pop_done(part, out)
            if lane.hops:
                heap[i] = (lane.hops[0].ts, lane.seq, lane)
            else:
                heap[i] = heap[-1]
                heap.pop()
            if i == 0 and heap:
                heapq.heapreplace(heap, heap[0])  # sift the replaced top into place
            elif heap:
                heapq.heapify(heap)  # a late lane's head went: rare (max_hold_s), so rebuilt
        self._lanes = {k: ln for k, ln in self._lanes.items() if ln.hops}
        return out

    def give_back(self, out: Released) -> None:
        """Undo a release whose hops could not be applied: they are held again, in their places.

        Applying them again is safe: an entity recognises a hop it already counted by its
        delivery position, and sending a hop on twice gives a duplicate with the same event id.
        """
        for part, entry in reversed(out._popped):
            self._msgs.setdefault(part, deque()).appendleft(entry)
        for lane, hop in reversed(out._taken):
            # An emptied lane was forgotten, and a message since may have begun a new one: in front of its hops.
            self._lanes.setdefault(lane.key, lane).hops.appendleft(hop)
            hop.entry.left += 1
            self._held += 1
        out._taken.clear()
        out._popped.clear()

    def drop(self, *, generation: int, keep: set[Hashable] | None = None) -> int:
        """Forget entries of another consumer generation or of partitions not in `keep`; returns hops dropped.

        Their input messages were never acknowledged, so the seek that ends a rebalance
        delivers them again (to this worker or the partition's new owner).
        """
        before = self._held
        for part in list(self._msgs):
            if keep is not None and part not in keep:
                del self._msgs[part]
            else:
                q = self._msgs[part]
                if any(e.generation != generation for e in q):
                    self._msgs[part] = deque(e for e in q if e.generation == generation)
        for key, lane in list(self._lanes.items()):
            if keep is not None and lane.key[0] not in keep:
                gone = len(lane.hops)
                del self._lanes[key]
            else:
                kept = deque(h for h in lane.hops if h.entry.generation == generation)
                gone = len(lane.hops) - len(kept)
                lane.hops = kept
            self._held -= gone
        return before - self._held

    def _pop_done(self, part: Hashable, out: Released) -> None:
        q = self._msgs.get(part)
        while q and q[0].left == 0:
            entry = q.popleft()
            out.done.append(entry.token)
            out._popped.append((part, entry))
        if q is not None and not q:
            del self._msgs[part]
