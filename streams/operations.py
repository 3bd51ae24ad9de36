"""The worker's operator side: signed commands from `ops.control`, model swaps, replies on `ops.status`.

Every worker reads every partition of the control topic (no consumer group: a command is for
all workers, not for one). At start-up the topic's history is re-applied without the timestamp
check, so operator switches (threshold, pause, dry-run, allowlist) survive restarts; model
commands in the history are skipped because the registry's active version already says which
model to serve. Anything refused is counted, logged and answered on the status topic.

`models.retrain` is read the same way: a signed `announce` (from `streamguard train --publish`
or the retrain worker) names a version, its sha256 and feature schema; the worker fetches it
from the model store, checks all three and the conformance suite, and swaps it in. `retrain`
requests on either topic are for the retrain worker and are ignored here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from features.extract import FEATURE_SCHEMA_VERSION

from .control import Command, ControlRejected, Envelope, Verifier
from .models import ModelRefused, artifact_cache, load_version

if TYPE_CHECKING:
    from .app import Pipeline

__all__ = ["Operations"]

log = logging.getLogger("streamguard.worker")


def _challenger_version(p: Pipeline) -> str | None:
    """The challenger's version, if one runs."""
    return p.challenger.version if p.challenger is not None else None


class Operations:
    """Applies verified control commands to one worker's pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        s = pipeline.settings
        self.verifier = Verifier(s.signing_secret.get_secret_value(), window_s=s.control_window_s)
        self.worker_id = pipeline.worker_id

    def now_ms(self) -> int:
        return int(self.p.clock().timestamp() * 1000)

    def state(self) -> dict[str, Any]:
        """What an operator asks `status` for."""
        p = self.p
        return {"model": {"name": p.bundle.name, "version": p.bundle.version},
                "challenger": p.challenger_state(),
                "threat_threshold": p.threshold, "dry_run": p.policy.dry_run, "paused": p.policy.paused,
                "allowlist": list(p.policy.allowlist)}

    async def handle(self, raw: bytes, *, history: bool = False) -> dict[str, Any] | None:
        """Verify and apply one control message; the reply to publish (None for history)."""
        m = self.p.metrics
        try:
            env = self.verifier.verify(raw, now_ms=self.now_ms(), check_time=not history)
        except ControlRejected as exc:
            m.control.labels("rejected", exc.reason).inc()
            log.warning("control message refused (%s): %s", exc.reason, exc.detail)
            return None if history else self._reply(None, "rejected", exc.reason, exc.detail)
        cmd = env.command
        if cmd.op == "retrain":
            return None  # for the retrain worker, which answers it
        if history and cmd.op in ("promote", "rollback", "announce", "status", "unblock"):
            # The registry / the policy state already hold their effect; a challenger that was
            # promoted later in the history has ended, as it did live.
            if cmd.op in ("promote", "announce") and _challenger_version(self.p) == cmd.version:
                self.p.set_challenger(None)
            return None
        try:
            detail = await self._apply(cmd)
        except ModelRefused as exc:
            m.control.labels("failed", exc.reason).inc()
            m.model_refused.labels(exc.reason).inc()
            log.error("%s", exc)
            return self._reply(env, "failed", exc.reason, str(exc))
        except ControlRejected as exc:
            m.control.labels("rejected", exc.reason).inc()
            return None if history else self._reply(env, "rejected", exc.reason, exc.detail)
        m.control.labels("applied", cmd.op).inc()
        log.info("control %s applied: %s", cmd.op, detail)
        return None if history else self._reply(env, "applied", cmd.op, detail)

    def _reply(self, env: Envelope | None, outcome: str, reason: str, detail: str) -> dict[str, Any]:
        return {"worker": self.worker_id, "app_id": self.p.settings.app_id, "at_ms": self.now_ms(),
                "nonce": env.nonce if env else None, "op": env.command.op if env else None,
                "outcome": outcome, "reason": reason, "detail": detail, "state": self.state()}

    async def _apply(self, cmd: Command) -> str:
        p = self.p
        if cmd.op in ("promote", "rollback"):
            return await self.swap(cmd.version or "")
        if cmd.op == "announce":
            if cmd.feature_schema_version != FEATURE_SCHEMA_VERSION:
                raise ModelRefused("schema_mismatch", f"announced feature schema {cmd.feature_schema_version}, this "
                                   f"worker computes {FEATURE_SCHEMA_VERSION}", version=cmd.version or "")
            return await self.swap(cmd.version or "", expected_sha256=cmd.sha256)
        if cmd.op == "challenger":
            return await self.challenge(cmd.version, cmd.fraction or 0.0)
        if cmd.op == "set_threshold":
            p.threshold = int(cmd.value or 0)
            return f"threat threshold {p.threshold}"
        if cmd.op in ("pause_actions", "resume_actions"):
            p.policy = dataclasses.replace(p.policy, paused=cmd.op == "pause_actions")
            return f"actions {'paused' if p.policy.paused else 'resumed'}"
        if cmd.op == "dry_run":
            p.policy = dataclasses.replace(p.policy, dry_run=bool(cmd.on))
            return f"dry run {'on' if cmd.on else 'off'}"
        if cmd.op == "allowlist":
            cidrs = [c for c in p.policy.allowlist if c != cmd.cidr]
            if cmd.action == "add":
                cidrs.append(cmd.cidr or "")
            p.policy = dataclasses.replace(p.policy, allowlist=tuple(cidrs))
            return f"allowlist {cmd.action} {cmd.cidr}"
        if cmd.op == "unblock":
            # The policy state lives with the healing agent: the request travels there.
            await p.healing_in.send(key=b"threats", value=orjson.dumps({"unblock": cmd.target}))
            return f"unblock {cmd.target} requested"
        if cmd.op == "status":
            return "status"
        raise ControlRejected("unsupported", f"{cmd.op} is not handled by workers")

    async def swap(self, version: str, expected_sha256: str | None = None) -> str:
        """Load `version` off the event loop and serve it from the next batch on."""
        p = self.p
        if version == p.bundle.version:
            return f"model {version} already serving"
        started = time.monotonic()
        s = p.settings
        bundle = await asyncio.to_thread(load_version, p.store, s.model_name, version, artifact_cache(s),
                                         expected_sha256=expected_sha256)
        old = p.bundle.version
        p.serve(bundle)  # between two batches: a batch reads the bundle once
        p.metrics.model_swaps.inc()
        ended = ""
        if _challenger_version(p) == bundle.version:  # the challenger won: it is the champion now
            p.set_challenger(None)
            ended = "; its challenge ends"
        return f"model {old} -> {bundle.version} in {time.monotonic() - started:.2f} s{ended}"

    async def challenge(self, version: str | None, fraction: float) -> str:
        """Run `version` beside the serving model (shadow; A/B for `fraction` of entities), or stop one."""
        p = self.p
        if version is None:
            was = _challenger_version(p)
            p.set_challenger(None)
            return f"challenger {was} stopped" if was else "no challenger was running"
        if version == p.bundle.version:
            raise ControlRejected("is_champion", f"{version} is the serving model; a challenger must be another version")
        if version == _challenger_version(p):
            p.set_challenger(p.challenger, fraction)  # only the split changes
        else:
            s = p.settings
            bundle = await asyncio.to_thread(load_version, p.store, s.model_name, version, artifact_cache(s))
            p.set_challenger(bundle, fraction)
        mode = f"A/B, serving {fraction:.0%} of entities" if fraction > 0 else "shadow only"
        return f"challenger {version} beside {p.bundle.version} ({mode})"

    async def run(self) -> None:
        """Consume the control topic forever: history first, then live commands."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        s, names = self.p.settings, self.p.names
        consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
        await consumer.start()
        await producer.start()
        try:
            tps = []
            for topic in (names.control, names.retrain):
                parts = consumer.partitions_for_topic(topic) or set()
                for _ in range(50):
                    if parts:
                        break
                    await asyncio.sleep(0.2)
                    parts = await self._partitions(consumer, topic)
                tps += [TopicPartition(topic, n) for n in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for rec in records:
                        history = rec.offset < ends.get(tp, 0)
                        reply = await self.handle(rec.value or b"", history=history)
                        if reply is not None:
                            await producer.send_and_wait(names.status, orjson.dumps(reply),
                                                         key=self.worker_id.encode())
        finally:
            await consumer.stop()
            await producer.stop()

    @staticmethod
    async def _partitions(consumer: Any, topic: str) -> set[int]:
        await consumer._client.force_metadata_update()
        return consumer.partitions_for_topic(topic) or set()
