"""Heal: threats and operator unblocks in, healing actions out, under the pure policy of `scoring.healing`.

The healing topic has one partition, so one worker holds the policy state (blocks, escalation,
the circuit breaker, the actions of recent threats) and de-duplication is global. The state is
written durably before the actions go out: a redelivered threat gets the very same actions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from faust.types import TP

from scoring.healing import HealingState, decide, expire, release

from ..internal import UnblockRequest, read_healing
from ..wire import HealingAction
from .outgoing import Origin, Outgoing

if TYPE_CHECKING:
    from ..serving import Serving
    from .context import StageContext

__all__ = ["HealStage", "action_record"]

log = logging.getLogger("streamguard.worker")

_STATE_KEY = b"policy-state"


_EXPIRY = Origin("(expiry)")  # actions are small: the oversized case is unreachable
BATCH = 500


def action_record(a: Any) -> HealingAction:
    """The wire record of a policy action (`scoring.healing.Action`)."""
    return HealingAction(
        action_id=a.action_id, action=a.action, target=a.target, target_type=a.target_type, reason=a.reason,
        risk=a.risk, ttl_s=a.ttl_s, expires_at_ms=a.expires_at_ms, dry_run=a.dry_run, degraded=a.degraded,
        threat_event_ids=list(a.threat_event_ids), policy_version=a.policy_version, issued_at_ms=a.issued_at_ms,
    )


class HealStage:
    """Applies the healing policy to threats and unblocks; expires blocks on a timer."""

    def __init__(self, ctx: StageContext, serving: Serving) -> None:
        self.ctx = ctx
        self.serving = serving
        self.table = ctx.tables.healing
        self._state: HealingState | None = None

    def state(self) -> HealingState:
        """The policy state, loaded from the table on first use."""
        if self._state is None:
            data = self.table.get(_STATE_KEY)
            self._state = HealingState.restore(data) if data else HealingState()
        return self._state

    async def run(self, stream: Any) -> None:
        """The agent: decide a batch, write the policy state durably, then send its actions."""
        ctx = self.ctx
        async for batch in stream.take_events(BATCH, within=0.1):
            ctx.delivery.check("heal", batch)
            out = ctx.outgoing()
            state = self.state()
            now = ctx.clock()
            actions = []
            for event in batch:
                try:
                    msg = read_healing(event.value)
                    if isinstance(msg, UnblockRequest):  # an operator's request, relayed by the control consumer
                        actions.extend(release(state, msg.unblock, self.serving.policy, now))
                    else:
                        actions.extend(decide(msg, state, self.serving.policy, now))
                except Exception as exc:  # noqa: BLE001 - a corrupt internal message costs itself only
                    await ctx.dead_letter_internal(out, event.message, event.value, exc)
            await self._write_state(state)
            await self._emit(out, actions, batch[-1].message)
            await out.flush()

    async def expire_tick(self) -> None:
        """Lift blocks whose time is up (only on the worker that owns the healing partition)."""
        ctx = self.ctx
        if TP(ctx.topics.healing.get_topic_name(), 0) not in ctx.app.assignor.assigned_actives():
            self._state = None  # another worker owns it now; reload if it comes back
            return
        state = self.state()
        actions = expire(state, self.serving.policy, ctx.clock())
        if actions:
            # Delivered before the state forgets the blocks: a crash in between lifts them again,
            # as the same actions (an expiry is issued at the block's expiry time).
            out = ctx.outgoing()
            await self._emit(out, actions, _EXPIRY)
            await out.flush()
            await self._write_state(state)

    async def _write_state(self, state: HealingState) -> None:
        """Write the policy state durably, trying again until the broker has it (the batch waits)."""
        delay = 0.5
        while True:
            try:
                await self.ctx.write_durably(self.table, [(_STATE_KEY, state.snapshot())])
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # raising here would acknowledge the batch with its actions unsent
                log.exception("writing the healing policy state failed; trying again in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _emit(self, out: Outgoing, actions: list[Any], source: Any) -> None:
        # The policy state is durable first: it remembers each threat's (and each operator
        # unblock's) actions, so the redelivered input gets the same ones again.
        for a in actions:
            await out.send(self.ctx.topics.actions, key=a.target.encode(),
                           value=action_record(a).model_dump_json().encode(), record="action", source=source)
            self.ctx.metrics.actions.labels(a.action, str(a.dry_run).lower()).inc()
            if a.degraded:
                self.ctx.metrics.actions_degraded.inc()
