"""Entity hop: update each entity's windows with its events, in event-time order, and send the hops on.

An event belongs to up to four entities (source, destination, user, service) and visits each
one's partition in turn, so the worker that owns an entity updates its state, whatever the
producer's keying and however many workers run. Hops are held until the event-time floor
has passed them (`streams.ordering`), then applied as a batch to the window store of their hop
partition (`windows`). An input is acknowledged once its hops are sent on and a snapshot
covering it is on the broker: within a second for a small store, at most every
`STREAMGUARD_WINDOW_SNAPSHOT_S` seconds for a large one, and whenever the worker gives up its
partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from features.windows import WindowConfig

from ..faust.internals import committed_offsets
from ..internal import delivered_by, encode, event_time, position, unpack, via_origin
from ..ordering.runtime import REPORT_MIN_S
from .windows import Prepared, WindowStates, apply_hops, prepare_hop

if TYPE_CHECKING:
    from ..ordering.hold import Released
    from ..ordering.runtime import Ordering
    from .context import StageContext

__all__ = ["HopStage"]

log = logging.getLogger("streamguard.worker")

BATCH = 8  # internal messages (each up to `internal.MAX_HOPS_PER_MESSAGE` hops) per hop batch
RELEASE_EVERY_S = 0.1
RELEASE_MAX_HOPS = 4_000  # hops applied as one batch
HOLE_WAIT_S = 60.0  # longest wait for a missing hop message fetched again before going on without it
CHECKPOINT_POLL_S = 0.1  # how often the checkpoint task looks for a rebalance, a stop or a due snapshot


class HopStage:
    """Holds hops for the event-time floor, applies what it releases, sends the hops on, acknowledges."""

    def __init__(self, ctx: StageContext, ordering: Ordering) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.ordering = ordering
        self.cfg = WindowConfig(allowed_lateness_ms=s.allowed_lateness_s * 1000, idle_ttl_ms=s.idle_ttl_s * 1000)
        self.windows = WindowStates(ctx, self.cfg, ordering)
        self.snapshot_max_s = s.window_snapshot_s
        self.snapshot_min_s = min(s.window_snapshot_min_s, s.window_snapshot_s)
        self._lock = asyncio.Lock()  # hop batches and timed releases take turns
        self._outbox = ctx.outbox()
        self._stream: Any = None
        self._holes: dict[int, tuple[int, float, int]] = {}  # partition -> (hole's first offset, since, generation)

    async def run(self, stream: Any) -> None:
        """The agent. Inputs are acknowledged by hand: a message is done once all its hops are sent on."""
        self._stream = stream
        async for batch in stream.noack_take(BATCH, within=0.05):
            async with self._lock:
                await self._hold_hops(batch)
                try:
                    await self._release()
                except Exception:
                    log.exception("applying released hops failed; they are held and tried again")

    async def release_task(self) -> None:
        """Release held hops when another worker's floor moves, or every 0.1 s, when no hop batch comes.

        Workers holding hops wait on each other's floors in turn, so each report answered at
        once, not at the next tick, is what keeps a backlog moving.
        """
        ordering = self.ordering
        while True:
            try:
                await asyncio.wait_for(ordering.floor_moved.wait(), timeout=RELEASE_EVERY_S)
            except TimeoutError:
                pass
            ordering.floor_moved.clear()
            try:
                if ordering.hold.has_entries():
                    async with self._lock:
                        await self._release()
                # A release round's report may have been cut by the interval: a held floor must not go stale.
                await ordering.report_floor(min_interval_s=REPORT_MIN_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("releasing held hops failed")
                await asyncio.sleep(RELEASE_EVERY_S)

    async def _hold_hops(self, batch: Any) -> None:
        """Hold the hops of a batch of hop messages until the event-time floor passes them."""
        ctx, ordering = self.ctx, self.ordering
        committed = committed_offsets(ctx.app.consumer)
        out = ctx.outgoing()
        now = time.monotonic()
        for event in batch:
            part, offset = event.message.partition, event.message.offset
            if not self._in_order(event, ctx.delivery.hole("entity-hop", event, committed), now):
                continue
            held: list[tuple[int, Any]] = []
            lanes: list[str] = []
            try:
                hops = unpack(event.value)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the stage
                await ctx.dead_letter_internal(out, event.message, event.value, exc)
                hops = []
            for index, msg in enumerate(hops):
                try:
                    key = msg["route"][msg["i"]][1].encode()
                    ts = event_time(msg)
                    lane = delivered_by(msg)[0]  # the hold's lane: the hop's delivery origin
                except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                    await ctx.dead_letter_internal(out, event.message, encode(msg), exc)
                    continue
                ordering.observe_hop(part, ts)
                # Held decoded, so the release needs no second decode: ~1.8 KB a hop against 0.66 KB
                # re-encoded (measured), at most `ordering.runtime.MAX_HELD_HOPS` (10,000) of them.
                held.append((ts, (key, msg, position(offset, index), event.message)))
                lanes.append(lane)
            # Held before the dead letters are delivered: the message is acknowledged once its
            # hops are applied, and that waits for this flush (the hop lock is held).
            ordering.hold.add(part, event, held, now, event.message.generation_id, lanes)
        await out.flush()

    def _in_order(self, event: Any, hole: int | None, now: float) -> bool:
        """False for a message to leave unheld and unacknowledged: one past a hole being fetched again.

        A partition's messages must be applied in offset order: a window store takes a delivery
        position at or below its origin's mark for a redelivery (`windows`), so a message that
        never arrived, applied after later ones, would be read and never counted. Faust has
        dropped messages after restarts (`streams.faust.fixes`); the fetch loop is sent back to
        the hole, and the messages after it come again after it.
        """
        msg = event.message
        part, offset = msg.partition, msg.offset
        waiting = self._holes.get(part)
        if waiting is not None:
            first, since, generation = waiting
            if generation != msg.generation_id or offset <= first:
                del self._holes[part]  # the re-fetch has begun, or a rebalance's seek replaced it
            elif now - since > HOLE_WAIT_S:
                del self._holes[part]
                log.error("entity-hop: hops[%d] offset %d never came again in %.0f s; going on without it",
                          part, first, HOLE_WAIT_S)
            else:
                return False
        if hole is not None:
            self._holes[part] = (hole, now, msg.generation_id)
            return False
        return True

    async def _release(self) -> None:
        """Apply the held hops the event-time floor has passed to their entities, send them on, acknowledge."""
        ordering, app, m = self.ordering, self.ctx.app, self.ctx.metrics
        hold = ordering.hold
        # Faust gives up partitions, and stops, only once every message in flight is
        # acknowledged (`stream_wait_empty`): then everything held goes at once, out of order.
        flush = app.rebalancing or app.should_stop or not app.flow_control.is_active()
        floor = ordering.release_floor() if ordering.hold_on and not flush else None
        hops_topic = self.ctx.topics.hops.get_topic_name()
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == hops_topic}
        hold.drop(generation=app.consumer_generation_id, keep=assigned)
        self.windows.keep_only(assigned, app.consumer_generation_id)
        while True:
            out = hold.release(floor, time.monotonic(), flush=flush and ordering.hold_on, max_hops=RELEASE_MAX_HOPS)
            try:
                await self._apply(out)
            except BaseException:
                # Held again, their inputs unacknowledged: the next round applies them (a hop
                # counted already is recognised, one sent already goes again with its id).
                hold.give_back(out)
                m.hops_held.set(len(hold))
                raise
            if len(out.hops) < RELEASE_MAX_HOPS:
                break
        m.hops_held.set(len(hold))
        if flush:
            await self._checkpoint()
        if ordering.hold_on:
            await ordering.report_floor(min_interval_s=REPORT_MIN_S)

    async def _apply(self, released: Released) -> None:
        """Apply one release's hops, a batch per hop partition; send them on; their inputs await a snapshot."""
        ctx, outbox = self.ctx, self._outbox
        out = ctx.outgoing()
        by_part: dict[int, list[tuple[int, Prepared, tuple[str, int]]]] = {}
        messages = []
        for index, (part, (_key, msg, pos, message)) in enumerate(released.hops):
            messages.append(message)
            try:
                prepared = prepare_hop(msg)
            except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                await ctx.dead_letter_internal(out, message, encode(msg), exc)
                continue
            # The next entity's origin is this partition's lane: the positions rise per lane, not per partition.
            by_part.setdefault(part, []).append((index, prepared, (via_origin(part, prepared.origin), pos)))
        results: list[tuple[int, int, Any, str]] = []
        for part, items in by_part.items():
            applied = apply_hops(self.windows.get(part), [(p, at) for _, p, at in items])
            results += [(index, part, hop, outcome)
                        for (index, _, _), (hop, outcome) in zip(items, applied, strict=True)]
        # Sent in release order (lowest event time first), as the next entities' holds expect.
        results.sort(key=lambda r: r[0])
        for index, part, nxt, outcome in results:
            if outcome != "counted":
                ctx.metrics.hop_outcomes.labels(outcome).inc()
            if not outbox.add(nxt, part, part):
                await ctx.dead_letter_hop(out, messages[index], nxt.message)
        await ctx.send_outbox(out, outbox)
        await out.flush()
        for event in released.done:
            self.windows.applied(event.message.partition, event)
        if released.forced:
            ctx.metrics.hops_forced.inc(released.forced)

    async def _checkpoint(self) -> None:
        """Snapshot the partitions with inputs pending, then acknowledge those inputs."""
        for event in await self.windows.checkpoint():
            await self._stream.ack(event)

    async def checkpoint_task(self) -> None:
        """Checkpoint when due (`WindowStates.due`), and at once when the worker gives up its partitions or stops.

        Faust hands partitions over, and stops, only once every input in flight is acknowledged.
        """
        app = self.ctx.app
        while True:
            await asyncio.sleep(CHECKPOINT_POLL_S)
            try:
                if self._stream is None or not self.windows.has_pending():
                    continue
                flush = app.rebalancing or app.should_stop or not app.flow_control.is_active()
                if flush or self.windows.due(self.snapshot_min_s, self.snapshot_max_s):
                    async with self._lock:
                        if flush:
                            await self._release()  # everything held goes first, then the checkpoint
                        else:
                            await self._checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checkpointing the windows failed; tried again")
                await asyncio.sleep(1.0)

    async def sweep(self) -> None:
        """Drop idle entities and refresh the entity gauges (a timer)."""
        hops = self.ctx.topics.hops.get_topic_name()
        assigned = {tp.partition for tp in self.ctx.app.assignor.assigned_actives() if tp.topic == hops}
        if self.ordering.max_event_ms == 0:
            return
        async with self._lock:
            self.windows.sweep(assigned)
