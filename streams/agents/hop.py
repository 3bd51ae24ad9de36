"""Entity hop: update each entity's windows with its events, in event-time order, and send the hops on.

An event belongs to up to four entities (source, destination, user, service) and visits each
one's partition in turn, so the worker that owns an entity updates its state, whatever the
producer's keying and however many workers run. Hops are held until the event-time floor
has passed them (`streams.ordering`), then applied as a batch: one changelog record per
entity touched, written durably before any hop goes on and before its input is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from features.entities import EntityState
from features.events import event_from_dict
from features.extract import role_features
from features.windows import WindowConfig

from ..internal import Hop, decode, encode, position, unpack
from ..ordering.runtime import REPORT_MIN_S
from .states import EntityStates

if TYPE_CHECKING:
    from ..ordering.hold import Released
    from ..ordering.runtime import Ordering
    from .context import StageContext

__all__ = ["HopStage", "apply_hop"]

log = logging.getLogger("streamguard.worker")

BATCH = 8  # internal messages (each up to `internal.MAX_HOPS_PER_MESSAGE` hops) per hop batch
RELEASE_EVERY_S = 0.1
RELEASE_MAX_HOPS = 4_000  # hops applied as one batch (one changelog record per entity touched)


def apply_hop(msg: dict[str, Any], state: EntityState | None, *, cfg: WindowConfig,
              at: tuple[str, int] | None = None) -> tuple[EntityState, Hop, str]:
    """Update this hop's entity state with the event and add its window features.

    Returns the state (new if there was none), the next hop, and what happened to the
    state: "counted", "late" (older than the lateness allows) or "duplicate" (this input
    was applied before, e.g. redelivered after a crash). `at` is where this hop message
    was read (hop topic partition, offset); it becomes the next hop's delivery position.
    """
    role, _key = msg["route"][msg["i"]]
    event = event_from_dict(msg["ev"])
    if state is None:
        state = EntityState(role, cfg)
    # Duplicates are recognised by the position of the message that delivered the event here:
    # the raw input for the first entity, the previous hop's (offset, index) for the others.
    # Hops from one such partition reach an entity in that order, so a high-water mark per
    # partition suffices. The raw position would not do past the first hop: events of one raw
    # partition reach a destination through many source partitions, in any order.
    origin, offset = msg.get("via") or msg["src"]
    if state.seen_before(origin, offset):
        outcome = "duplicate"
    else:
        outcome = "counted" if state.observe(event) else "late"
        state.mark_applied(origin, offset)
    msg["parts"][role] = role_features(role, state, event)
    msg["i"] += 1
    if at is not None:
        msg["via"] = [at[0], at[1]]
    nxt = msg["route"][msg["i"]][1].encode() if msg["i"] < len(msg["route"]) else None
    return state, Hop(nxt, msg), outcome


class HopStage:
    """Holds hops for the event-time floor, applies what it releases, sends the hops on, acknowledges."""

    def __init__(self, ctx: StageContext, ordering: Ordering) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.ordering = ordering
        self.cfg = WindowConfig(allowed_lateness_ms=s.allowed_lateness_s * 1000, idle_ttl_ms=s.idle_ttl_s * 1000)
        self.states = EntityStates(ctx, self.cfg, ordering)
        self._lock = asyncio.Lock()  # hop batches and timed releases take turns
        self._outbox = ctx.outbox()
        self._stream: Any = None

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
        ctx.delivery.check("entity-hop", batch)
        out = ctx.outgoing()
        now = time.monotonic()
        for event in batch:
            part, offset = event.message.partition, event.message.offset
            held: list[tuple[int, Any]] = []
            try:
                hops = unpack(event.value)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the stage
                await ctx.dead_letter_internal(out, event.message, event.value, exc)
                hops = []
            for index, msg in enumerate(hops):
                try:
                    key = msg["route"][msg["i"]][1].encode()
                    ts = int(msg["ev"]["ts"])
                except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                    await ctx.dead_letter_internal(out, event.message, encode(msg), exc)
                    continue
                ordering.observe_hop(part, ts)
                # Held as JSON, thousands may wait: ~0.9 KB a hop, against ~2.3 KB decoded (measured).
                held.append((ts, (key, encode(msg), position(offset, index), event.message)))
            # Held before the dead letters are delivered: the message is acknowledged once its
            # hops are applied, and that waits for this flush (the hop lock is held).
            ordering.hold.add(part, event, held, now, event.message.generation_id)
        await out.flush()

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
        if ordering.hold_on:
            await ordering.report_floor(min_interval_s=REPORT_MIN_S)

    async def _apply(self, released: Released) -> None:
        """Apply one release's hops as a batch: states written durably, hops delivered, inputs acknowledged."""
        ctx, outbox = self.ctx, self._outbox
        out = ctx.outgoing()
        touched: dict[bytes, EntityState] = {}
        for part, (key, raw, pos, message) in released.hops:
            try:
                msg = decode(raw)
                state = touched.get(key)
                if state is None:
                    state = self.states.get(key)
                state, nxt, outcome = apply_hop(msg, state, cfg=self.cfg, at=(f"hops:{part}", pos))
            except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                await ctx.dead_letter_internal(out, message, raw, exc)
                continue
            if outcome != "counted":
                ctx.metrics.hop_outcomes.labels(outcome).inc()
            touched[key] = state
            if not outbox.add(nxt, part):
                await ctx.dead_letter_hop(out, message, nxt.message)
        await self.states.write(touched)
        await ctx.send_outbox(out, outbox)
        await out.flush()
        for event in released.done:
            await self._stream.ack(event)
        if released.forced:
            ctx.metrics.hops_forced.inc(released.forced)
