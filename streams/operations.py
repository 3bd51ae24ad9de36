"""The worker's operator side: signed commands from `ops.control`, model swaps, replies on `ops.status`.

Every worker reads every partition of the control topic (no consumer group: a command is for
all workers, not for one), each message checked against its signature, the timestamp window
and the nonces seen. After each message it writes the operators' switches and how far it has
read as one signed record (`streams.operator_state`); a starting worker loads that record
before its agents start and reads on from there, so switches survive restarts and the
topic's retention, and nothing refused live is applied later. The registry's active version
says which model to serve; the record says which challenger runs beside it. Anything refused
is counted, logged and answered on the status topic.

`models.retrain` is read from its end: a signed `announce` (from `streamguard train --publish`
or the retrain worker) names a version, its sha256 and feature schema; the worker fetches it
from the model store, checks all three and the conformance suite, and swaps it in. `retrain`
requests on either topic are for the retrain worker and are ignored here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from features.extract import FEATURE_SCHEMA_VERSION

from .control import Command, ControlRejected, Envelope, Purpose, Verifier, sign
from .internal import unblock_request
from .kafka import aiokafka_security
from .model_store import ModelRefused, artifact_cache, load_version
from .operator_state import STATE_KEY, OperatorState, PromotionWatch, sign_state
from .policy import PolicyFileError
from .reader import GrouplessReader, keep_running
from .wire import AuditRecord, StatusReply, audit_record

if TYPE_CHECKING:
    from registry import ModelStore

    from .agents.context import StageContext
    from .serving import Serving

__all__ = ["Operations"]

log = logging.getLogger("streamguard.worker")

# Refusals decided before (or by) the signature check: the envelope's claims are not verified.
_UNVERIFIED = frozenset({"malformed", "unsigned", "invalid_command", "no_secret", "bad_signature"})


class Operations:
    """Applies verified control commands to one worker's serving state."""

    def __init__(self, ctx: StageContext, serving: Serving, store: Callable[[], ModelStore], *,
                 state_topic: str) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.serving = serving
        self.store = store  # opened on first use: a worker that is never told to swap never opens it
        self.secret = s.signing_secret.get_secret_value()
        self.verifier = Verifier(self.secret, app_id=s.app_id, window_s=s.control_window_s)
        self.worker_id = ctx.worker_id
        self.state_topic = state_topic
        self.position: dict[int, int] = {}  # control-topic partition -> next offset to read
        self.audits: list[AuditRecord] = []  # the audit records of the replies made, until sent
        self.origin = ""  # the message being handled (topic/partition/offset): part of its audit id
        self._recorded_watch: PromotionWatch | None = None  # the promotion watch in the last record written

    def now_ms(self) -> int:
        return self.ctx.now_ms()

    def restore(self, state: OperatorState | None, control_ends: dict[int, int]) -> str:
        """Take the operators' switches from a loaded record, before the agents start; what was restored, in words.

        Without a record (a new deployment) the switches are the settings' and the control
        topic is read from `control_ends`, its end when the worker started: the topic's history
        is never applied without the timestamp window.
        """
        sv, s = self.serving, self.ctx.settings
        if state is None:
            self.position = dict(control_ends)
            return "no operator state recorded: switches from the settings, control topic read from its end"
        sv.set_threshold(state.threat_threshold)
        sv.change_policy(paused=state.paused, dry_run=state.dry_run, allowlist=tuple(state.allowlist))
        policy = ""
        if state.policy is not None:
            try:
                policy = f", {sv.load_policy(state.policy)}"
            except PolicyFileError as exc:
                log.error("the recorded healing policy cannot be used (%s); keeping %s", exc, sv.policy.version)
        self.position = {int(p): o for p, o in state.position.items()}
        self.verifier.remember(state.nonces)
        challenger = ""
        if state.challenger and state.challenger != sv.bundle.version:
            try:
                bundle = load_version(self.store(), s.model_name, state.challenger, artifact_cache(s),
                                      secret=self.secret)
                sv.set_challenger(bundle, state.ab_fraction)
                challenger = f", challenger {state.challenger}"
            except ModelRefused as exc:
                log.error("the recorded challenger cannot run: %s", exc)
        watch = self._resume_watch(state.watch)
        return (f"operator state from {state.writer}: threshold {state.threat_threshold}, dry run {state.dry_run}, "
                f"paused {state.paused}, {len(state.allowlist)} allowlisted{policy}{challenger}{watch}; control topic "
                f"from {self.position}")

    def _resume_watch(self, watch: PromotionWatch | None) -> str:
        """Watch the served version again if it was on watch when the record was written; what was done, in words."""
        sv, s = self.serving, self.ctx.settings
        if watch is None or watch.version != sv.bundle.version or sv.guard is not None:
            return ""  # no watch, or another version serves now (rolled back, promoted again)
        try:
            previous = load_version(self.store(), s.model_name, watch.against, artifact_cache(s), secret=self.secret)
        except ModelRefused as exc:
            log.error("the promotion watch of %s against %s cannot resume: %s", watch.version, watch.against, exc)
            return f", promotion watch of {watch.version} NOT resumed ({watch.against} cannot be loaded)"
        sv.serve(sv.bundle, watch_against=previous)
        if sv.guard is None:
            return ""  # promotions are not watched with these settings
        return f", promotion watch of {watch.version} against {watch.against} resumed (its count starts again)"

    def snapshot(self) -> OperatorState:
        """The record of the switches now and how far the control topic has been read."""
        sv = self.serving
        return OperatorState(
            app_id=self.ctx.settings.app_id, position={str(p): o for p, o in self.position.items()},
            threat_threshold=sv.threshold, paused=sv.policy.paused, dry_run=sv.policy.dry_run,
            allowlist=list(sv.policy.allowlist), challenger=sv.challenger_version, ab_fraction=sv.ab_fraction,
            policy=sv.policy_doc, watch=self._watch(),
            nonces=self.verifier.recent_nonces(self.now_ms()), written_at_ms=self.now_ms(), writer=self.worker_id)

    def _watch(self) -> PromotionWatch | None:
        guard = self.serving.guard
        return None if guard is None else PromotionWatch(version=guard.version, against=guard.previous)

    async def handle(self, raw: bytes, purpose: Purpose = "control") -> StatusReply | None:
        """Verify and apply one message of the `purpose` topic; the reply to publish (None: nothing to answer)."""
        m = self.ctx.metrics
        try:
            env = self.verifier.verify(raw, now_ms=self.now_ms(), purpose=purpose)
        except ControlRejected as exc:
            m.control.labels("rejected", exc.reason).inc()
            log.warning("control message refused (%s): %s", exc.reason, exc.detail)
            return self._reply(exc.envelope, "rejected", exc.reason, exc.detail, claimed=exc.claimed)
        cmd = env.command
        if cmd.op in ("retrain", "label"):
            return None  # for the retrain worker, which answers them
        try:
            detail = await self._apply(cmd)
        except ModelRefused as exc:
            m.control.labels("failed", exc.reason).inc()
            m.model_refused.labels(exc.reason).inc()
            log.error("%s", exc)
            return self._reply(env, "failed", exc.reason, str(exc))
        except ControlRejected as exc:
            m.control.labels("rejected", exc.reason).inc()
            return self._reply(env, "rejected", exc.reason, exc.detail)
        m.control.labels("applied", cmd.op).inc()
        log.info("control %s applied: %s", cmd.op, detail)
        return self._reply(env, "applied", cmd.op, detail)

    def _reply(self, env: Envelope | None, outcome: str, reason: str, detail: str, *,
               claimed: Envelope | None = None) -> StatusReply:
        reply = StatusReply(worker=self.worker_id, app_id=self.ctx.settings.app_id, at_ms=self.now_ms(),
                            nonce=env.nonce if env else None, op=env.command.op if env else None,
                            outcome=outcome, reason=reason, detail=detail, state=self.serving.status())
        # A refused message's issuer, op and nonce are only what it claims: the audit says so.
        seen = env or claimed
        self.audits.append(audit_record(
            reply, issuer=seen.issuer if seen else "", verified=env is not None and reason not in _UNVERIFIED,
            origin=self.origin, op=seen.command.op if seen else None, nonce=seen.nonce if seen else None))
        return reply

    async def _apply(self, cmd: Command) -> str:
        sv = self.serving
        if cmd.op == "promote":
            return await self.swap(cmd.version or "", watch=True)
        if cmd.op == "rollback":
            why = f"; {cmd.reason}" if cmd.reason else ""
            return await self.swap(cmd.version or "", watch=False) + why
        if cmd.op == "announce":
            if cmd.feature_schema_version != FEATURE_SCHEMA_VERSION:
                raise ModelRefused("schema_mismatch", f"announced feature schema {cmd.feature_schema_version}, this "
                                   f"worker computes {FEATURE_SCHEMA_VERSION}", version=cmd.version or "")
            return await self.swap(cmd.version or "", expected_sha256=cmd.sha256, watch=True)
        if cmd.op == "challenger":
            return await self.challenge(cmd.version, cmd.fraction or 0.0)
        if cmd.op == "set_threshold":
            sv.set_threshold(int(cmd.value or 0))
            return f"threat threshold {sv.threshold}"
        if cmd.op in ("pause_actions", "resume_actions"):
            sv.change_policy(paused=cmd.op == "pause_actions")
            return f"actions {'paused' if sv.policy.paused else 'resumed'}"
        if cmd.op == "dry_run":
            sv.change_policy(dry_run=bool(cmd.on))
            return f"dry run {'on' if cmd.on else 'off'}"
        if cmd.op == "allowlist":
            # Compared as networks: 10.0.0.0/8 and 010.0.0.0/8, or two spellings of an IPv6 range, are one.
            net = ipaddress.ip_network(cmd.cidr or "")
            cidrs = [c for c in sv.policy.allowlist if ipaddress.ip_network(c, strict=False) != net]
            if cmd.action == "add":
                cidrs.append(str(net))
            sv.change_policy(allowlist=tuple(cidrs))
            return f"allowlist {cmd.action} {cmd.cidr}"
        if cmd.op == "policy" and cmd.policy is not None:
            try:
                return f"{sv.load_policy(cmd.policy)} loaded"
            except PolicyFileError as exc:
                raise ControlRejected("invalid_policy", str(exc)) from None
        if cmd.op == "unblock":
            # The policy state lives with the healing agent: the request travels there.
            await self.ctx.topics.healing.send(key=b"threats", value=unblock_request(cmd.target or ""))
            return f"unblock {cmd.target} requested"
        if cmd.op == "status":
            return "status"
        raise ControlRejected("unsupported", f"{cmd.op} is not handled by workers")

    async def swap(self, version: str, expected_sha256: str | None = None, *, watch: bool = False) -> str:
        """Load `version` off the event loop and serve it from the next batch on (`watch`: guarded, see `serve`)."""
        sv = self.serving
        if version == sv.bundle.version:
            return f"model {version} already serving"
        started = time.monotonic()
        s = self.ctx.settings
        bundle = await asyncio.to_thread(load_version, self.store(), s.model_name, version, artifact_cache(s),
                                         secret=self.secret, expected_sha256=expected_sha256)
        old, previous = sv.bundle.version, sv.bundle
        sv.serve(bundle, watch_against=previous if watch else None)  # between two batches: a batch reads it once
        self.ctx.metrics.model_swaps.inc()
        ended = ""
        if sv.challenger_version == bundle.version:  # the challenger won: it is the champion now
            sv.set_challenger(None)
            ended = "; its challenge ends"
        watched = (f"; watched against {old} for {sv.guard.cfg.watch_events} events" if sv.guard is not None
                   else "")
        return f"model {old} -> {bundle.version} in {time.monotonic() - started:.2f} s{ended}{watched}"

    async def guard_rollback(self, bad: str, previous: str, detail: str) -> bytes:
        """The registry back to `previous` (if `bad` is still active there) and the signed rollback for every worker."""
        s = self.ctx.settings
        try:
            await asyncio.to_thread(_reactivate, self.store(), s.model_name, bad, previous)
        except Exception:  # the workers still roll back; a restart would load `bad` again
            log.exception("the promotion guard could not set %s active in the registry again", previous)
        reason = f"promotion guard: {detail}"[:2000]
        env = sign(Command(op="rollback", version=previous, reason=reason), self.secret, app_id=s.app_id,
                   now_ms=self.now_ms(), issuer=f"worker:{self.worker_id}:promotion-guard")
        return env.model_dump_json().encode()

    async def challenge(self, version: str | None, fraction: float) -> str:
        """Run `version` beside the serving model (shadow; A/B for `fraction` of entities), or stop one."""
        sv = self.serving
        if version is None:
            was = sv.challenger_version
            sv.set_challenger(None)
            return f"challenger {was} stopped" if was else "no challenger was running"
        if version == sv.bundle.version:
            raise ControlRejected("is_champion",
                                  f"{version} is the serving model; a challenger must be another version")
        if version == sv.challenger_version:
            sv.set_challenger(sv.challenger, fraction)  # only the split changes
        else:
            s = self.ctx.settings
            bundle = await asyncio.to_thread(load_version, self.store(), s.model_name, version, artifact_cache(s),
                                             secret=self.secret)
            sv.set_challenger(bundle, fraction)
        mode = f"A/B, serving {fraction:.0%} of entities" if fraction > 0 else "shadow only"
        return f"challenger {version} beside {sv.bundle.version} ({mode})"

    async def run(self) -> None:
        """Consume the control topics for as long as the worker runs (restarted after a broker hiccup)."""
        await keep_running("control consumer", self._consume)

    async def _consume(self) -> None:
        """Read the control topic from the recorded position and models.retrain from its end; reply, record."""
        from aiokafka import AIOKafkaProducer

        s, names = self.ctx.settings, self.ctx.names
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, **aiokafka_security(s))
        await producer.start()
        offsets = {(names.control, p): o for p, o in self.position.items()}
        try:
            async with GrouplessReader(s.kafka_bootstrap, [names.control, names.retrain], start="end",
                                       offsets=offsets) as reader:
                if not self.position:  # no partition known at start: from where the reader starts
                    self.position = await reader.positions(names.control)
                await self._record(producer)
                async for records in reader.batches():
                    for rec in records:
                        self.origin = f"{rec.topic}/{rec.partition}/{rec.offset}"
                        reply = await self.handle(rec.value or b"",
                                                  "control" if rec.topic == names.control else "models")
                        # The record first, then the reply: an operator who reads "applied" knows a
                        # worker killed right after still resumes with it (a promotion's watch too).
                        if rec.topic == names.control:
                            self.position[rec.partition] = rec.offset + 1
                            await self._record(producer)
                        elif self._watch() != self._recorded_watch:  # an announcement began a watch
                            await self._record(producer)
                        if reply is not None:
                            await producer.send_and_wait(names.status, reply.model_dump_json().encode(),
                                                         key=self.worker_id.encode())
                        for audit in self.audits:
                            await producer.send_and_wait(names.audit, audit.model_dump_json().encode(),
                                                         key=audit.audit_id.encode())
                        self.audits.clear()
                    if self._watch() != self._recorded_watch:
                        # A watch began (an announced version), ended (a verdict) or moved on.
                        await self._record(producer)
        finally:
            await producer.stop()

    async def _record(self, producer: Any) -> None:
        """Write the operator state record (signed) and wait until the broker has it."""
        state = self.snapshot()
        await producer.send_and_wait(self.state_topic, sign_state(state, self.secret), key=STATE_KEY)
        self._recorded_watch = state.watch


def _reactivate(store: ModelStore, name: str, bad: str, previous: str) -> None:
    """Make `previous` active again unless an operator has moved on from `bad` meanwhile."""
    active = store.active(name)
    if active is not None and active.version == bad:
        store.activate(name, previous)
