"""Heal: threats and operator unblocks in, healing actions and incidents out (`scoring.healing`, `scoring.incidents`).

The healing topic has one partition, so one worker holds the policy state (blocks, escalation,
the circuit breaker, the actions of recent threats) and de-duplication is global. The state is
written durably before the actions go out: a redelivered threat gets the very same actions.

The same worker groups threats into incidents. Each open incident is one table key, written
with the policy state when a batch touched it; the book remembers the last healing-topic
offset it counted, so a redelivered threat is not counted twice. Opened and updated
incidents go out after the state is written (a record lost in a crash goes out again: restored
incidents are re-sent); closed ones go out on the timer before their keys are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import TP

from scoring.healing import HealingState, decide, expire, release
from scoring.incidents import Incident, IncidentBook, IncidentConfig

from ..internal import UnblockRequest, read_healing
from ..wire import HealingAction
from ..wire import Incident as IncidentRecord
from .outgoing import Origin, Outgoing

if TYPE_CHECKING:
    from ..serving import Serving
    from .context import StageContext

__all__ = ["HealStage", "action_record"]

log = logging.getLogger("streamguard.worker")

_STATE_KEY = b"policy-state"
_POSITION_KEY = b"incidents-position"  # the last healing-topic offset the incident book counted
_INCIDENT_PREFIX = b"incident:"


_EXPIRY = Origin("(expiry)")  # actions are small: the oversized case is unreachable
BATCH = 500


def action_record(a: Any) -> HealingAction:
    """The wire record of a policy action (`scoring.healing.Action`)."""
    return HealingAction(
        action_id=a.action_id, action=a.action, target=a.target, target_type=a.target_type, reason=a.reason,
        risk=a.risk, ttl_s=a.ttl_s, expires_at_ms=a.expires_at_ms, dry_run=a.dry_run, degraded=a.degraded,
        threat_event_ids=list(a.threat_event_ids), policy_version=a.policy_version, issued_at_ms=a.issued_at_ms,
        sources=list(a.sources),
    )


class HealStage:
    """Applies the healing policy to threats and unblocks; expires blocks on a timer."""

    def __init__(self, ctx: StageContext, serving: Serving) -> None:
        self.ctx = ctx
        self.serving = serving
        self.table = ctx.tables.healing
        self._state: HealingState | None = None
        self._book: IncidentBook | None = None
        s = ctx.settings
        self.incident_cfg = IncidentConfig(update_every_ms=int(s.incident_update_s * 1000),
                                           quiet_ms=int(s.incident_quiet_s * 1000), max_open=s.incident_max_open,
                                           by_destination=frozenset(
                                               x.strip() for x in s.incident_by_destination.split(",") if x.strip()))

    def state(self) -> HealingState:
        """The policy state, loaded from the table on first use."""
        if self._state is None:
            data = self.table.get(_STATE_KEY)
            self._state = HealingState.restore(data) if data else HealingState()
        return self._state

    def book(self) -> IncidentBook:
        """The open incidents, loaded from the table on first use."""
        if self._book is None:
            book = IncidentBook(self.incident_cfg)
            for key, data in list(self.table.items()):
                if not (isinstance(key, bytes) and key.startswith(_INCIDENT_PREFIX)) or not data:
                    continue
                try:
                    book.add_restored(Incident.restore(data))
                except Exception as exc:  # noqa: BLE001 - one unreadable incident must not stop healing
                    log.error("incident %r: unreadable in the table (%r); dropped", key[:120], exc)
            book.finish_restore()
            position = self.table.get(_POSITION_KEY)
            book.applied_position = int(position) if position is not None else -1
            self._book = book
        return self._book

    async def run(self, stream: Any) -> None:
        """The agent: decide a batch, write the policy state durably, then send its actions."""
        ctx = self.ctx
        async for batch in stream.take_events(BATCH, within=0.1):
            ctx.delivery.check("heal", batch)
            out = ctx.outgoing()
            state, book = self.state(), self.book()
            now = ctx.clock()
            now_ms = int(now.timestamp() * 1000)
            actions = []
            for event in batch:
                try:
                    msg = read_healing(event.value)
                    if isinstance(msg, UnblockRequest):  # an operator's request, relayed by the control consumer
                        done = release(state, msg.unblock, self.serving.policy, now)
                        book.note_actions(done, now_ms)
                    else:
                        done = decide(msg, state, self.serving.policy, now)
                        book.observe(msg, done, now_ms, position=event.message.offset,
                                     event_time_ms=msg.event_time_ms, model_version=msg.model_version)
                    actions.extend(done)
                except Exception as exc:  # noqa: BLE001 - a corrupt internal message costs itself only
                    await ctx.dead_letter_internal(out, event.message, event.value, exc)
            incidents = book.due(now_ms, close=False)
            await self._write_state(state, book)
            await self._emit(out, actions, batch[-1].message)
            await self._emit_incidents(out, incidents, batch[-1].message)
            await out.flush()

    async def expire_tick(self) -> None:
        """Lift blocks whose time is up (only on the worker that owns the healing partition)."""
        ctx = self.ctx
        if TP(ctx.topics.healing.get_topic_name(), 0) not in ctx.app.assignor.assigned_actives():
            self._state = self._book = None  # another worker owns it now; reload if it comes back
            return
        state, book = self.state(), self.book()
        now = ctx.clock()
        now_ms = int(now.timestamp() * 1000)
        actions = expire(state, self.serving.policy, now)
        book.note_actions(actions, now_ms)
        incidents = book.due(now_ms, close=True)
        if actions or incidents:
            # Delivered before the state forgets the blocks and the closed incidents: a crash in
            # between lifts them again, as the same actions (an expiry is issued at the block's
            # expiry time), and closes the incidents again.
            out = ctx.outgoing()
            await self._emit(out, actions, _EXPIRY)
            await self._emit_incidents(out, incidents, _EXPIRY)
            await out.flush()
            await self._write_state(state, book)

    async def _write_state(self, state: HealingState, book: IncidentBook) -> None:
        """Write the policy state and the incidents changed since the last write durably, trying again until the
        broker has them (the batch waits); a closed incident's key is deleted."""
        items: list[tuple[bytes, object]] = [(_STATE_KEY, self._fitting(state)), (_POSITION_KEY, book.applied_position)]
        for key in book.touched:
            inc = book.get(key)
            items.append((_INCIDENT_PREFIX + "\0".join(key).encode("utf-8", "surrogatepass"),
                          inc.snapshot() if inc is not None else None))
        delay = 0.5
        while True:
            try:
                await self.ctx.write_durably(self.table, items)
                book.touched.clear()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # raising here would acknowledge the batch with its actions unsent
                log.exception("writing the healing policy state failed; trying again in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _fitting(self, state: HealingState) -> dict:
        """The state's snapshot, shed (`HealingState.shed`) until it fits a record: a refused one stalls healing."""
        limit = int(self.ctx.max_record_bytes * 0.9)  # the record's key and framing take the rest
        snap = state.snapshot()
        size = len(orjson.dumps(snap))
        if size <= limit:
            return snap
        self.ctx.metrics.records_too_large.labels("healing_state").inc()
        while size > limit and state.shed():
            snap = state.snapshot()
            size = len(orjson.dumps(snap))
        log.error("the healing policy state outgrew one record (limit %d bytes): remembered attacking sources and "
                  "old issued actions were dropped, %d bytes now", self.ctx.max_record_bytes, size)
        return snap

    async def _emit_incidents(self, out: Outgoing, incidents: list[Incident], source: Any) -> None:
        """Send incident records, keyed by incident id (the topic is compacted: the latest revision stays)."""
        for inc in incidents:
            try:
                record = IncidentRecord.model_validate(inc.record())
            except ValueError:  # a bug, not input: the threats and actions of the batch still go out
                log.exception("incident %s does not fit its wire record; not sent", inc.incident_id)
                continue
            await out.send(self.ctx.topics.incidents, key=inc.incident_id.encode(),
                           value=record.model_dump_json().encode(), record="incident", source=source)
            self.ctx.metrics.incidents.labels(inc.status).inc()

    async def _emit(self, out: Outgoing, actions: list[Any], source: Any) -> None:
        # The policy state is durable first: it remembers each threat's (and each operator
        # unblock's) actions, so the redelivered input gets the same ones again.
        for a in actions:
            await out.send(self.ctx.topics.actions, key=a.target.encode(),
                           value=action_record(a).model_dump_json().encode(), record="action", source=source)
            self.ctx.metrics.actions.labels(a.action, str(a.dry_run).lower()).inc()
            if a.degraded:
                self.ctx.metrics.actions_degraded.inc()
