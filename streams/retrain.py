"""The retrain worker: trains a challenger on request, gates it against the champion, publishes it.

Triggers: a signed `retrain` command on `ops.control` (an operator), a signed `retrain` request
on `models.retrain` (a worker that measured drift), and an interval
(`STREAMGUARD_AUTO_RETRAIN_HOURS`). Drift and interval runs are coalesced: none starts within
`STREAMGUARD_RETRAIN_MIN_INTERVAL_S` of the last run (several workers report the same drift).
An operator's command always runs. Runs are one at a time.

A run trains on the configured sources (the scenario generator with fresh seeds, and/or
files), evaluates the champion (the active version) on the same held-out rows, and applies
`scoring.promotion_gate`. A challenger that passes is registered, activated and announced
(signed, with its sha256) for the workers to swap in; one that fails stays registered but
inactive, the reason recorded with the version. Each run is answered on `ops.status`.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .control import Command, ControlRejected, Envelope, Purpose, Verifier, sign
from .errors import StreamsError
from .kafka import client_conf
from .metrics import RetrainMetrics
from .model_store import ModelRefused, artifact_cache, load_version, open_store, register_trained
from .settings import Settings
from .topics import topic_names
from .wire import StatusReply, audit_record

__all__ = ["RetrainOptions", "RetrainWorker"]

log = logging.getLogger("streamguard.retrain")


@dataclass(frozen=True)
class RetrainOptions:
    """What a retrain run trains on and how strict the gate is."""

    generator: bool = True
    seeds_per_run: int = 2
    duration_s: float = 600.0
    eval_seeds: tuple[int, ...] = (100, 101)
    flows: tuple[Path, ...] = ()
    logs: tuple[Path, ...] = ()
    max_regression: float = 0.005
    require_approval: bool = False  # a version that passes the gate waits for an operator's `control promote`
    live: bool = True  # add the labelled live sample (features.sample) to the training rows
    extra_params: dict[str, Any] = field(default_factory=dict)


class RetrainWorker:
    """Consumes retrain triggers and runs them; `run_once` and `retrain` are usable on their own."""

    def __init__(self, settings: Settings, options: RetrainOptions, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 progress: Callable[[str], None] = log.info) -> None:
        self.s = settings
        self.o = options
        self.clock = clock
        self.progress = progress
        self.names = topic_names(settings)
        self.store = open_store(settings)
        self.verifier = Verifier(settings.signing_secret.get_secret_value(), app_id=settings.app_id,
                                 window_s=settings.control_window_s)
        self.worker_id = f"retrain@{socket.gethostname()}:{os.getpid()}"
        self.metrics = RetrainMetrics()
        self.last_run_monotonic: float | None = None
        self.runs = 0
        self.producer: Any = None

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _seeds(self) -> list[int]:
        # Fresh traffic each run, never an evaluation seed.
        base = 1000 + (self._now_ms() // 1000) % 1_000_000 * 10
        return [s for s in range(base, base + self.o.seeds_per_run + len(self.o.eval_seeds))
                if s not in self.o.eval_seeds][: self.o.seeds_per_run]

    def retrain(self, trigger: str, reason: str) -> dict[str, Any]:
        """One run: train, gate, register, and activate + announce if it passes. Returns the outcome."""
        from scoring.train import Dataset, TrainingData, TrainParams, file_data, generator_data, run_training

        started = time.monotonic()
        self.last_run_monotonic = started
        self.runs += 1
        name = self.s.model_name
        self.progress(f"retrain ({trigger}): {reason}")
        parts: list[TrainingData] = []
        if self.o.generator:
            parts.append(generator_data(self._seeds(), self.o.duration_s, self.o.eval_seeds, progress=self.progress))
        if self.o.flows or self.o.logs:
            parts.append(file_data(self.o.flows, self.o.logs, progress=self.progress))
        live = self._live_part() if self.o.live and self.s.live_rows_per_label > 0 else None
        if live is not None:
            parts.append(live)
        data = TrainingData(Dataset.concat(p.train for p in parts), Dataset.concat(p.test for p in parts),
                            {"parts": [p.description for p in parts], "trigger": trigger, "reason": reason})
        # The store keeps its own copies of the artifact and report: the working folder goes.
        with tempfile.TemporaryDirectory(prefix="streamguard-retrain-") as out:
            result = run_training(data, name=name, out_dir=Path(out), progress=self.progress,
                                  params=TrainParams.defaults(**self.o.extra_params))
            return self._gate_and_register(result, data, name, trigger, reason, started)

    def _live_part(self) -> Any:
        """The labelled live sample as training rows only: the gate still compares on held-out generator rows."""
        from scoring.train import Dataset, TrainingData

        from .live import read_live

        try:
            live, read = read_live(self.s, now_ms=self._now_ms(), progress=self.progress)
        except Exception as exc:  # noqa: BLE001 - the broker's state must not cost the run: train without
            self.progress(f"live sample not read ({type(exc).__name__}: {exc}); training without live rows")
            log.warning("live sample not read: %s", exc)
            return None
        x, y, counts = live.dataset()
        self.progress("live rows used: " + (", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"))
        about = {"source": "live traffic", "window_hours": self.s.live_window_hours, "rows_by_label": counts,
                 "read": read}
        return TrainingData(Dataset(x, y, []), Dataset(x[:0], y[:0], []), about)

    def _gate_and_register(self, result: Any, data: Any, name: str, trigger: str, reason: str,
                           started: float) -> dict[str, Any]:
        """Compare a trained version with the champion, register it, promote and announce it if it passes."""
        from scoring.train import evaluate, promotion_gate

        champion_info = self.store.active(name)
        champion_metrics = None
        if champion_info is not None:
            try:
                champion = load_version(self.store, name, champion_info.version, artifact_cache(self.s),
                                        secret=self.s.signing_secret.get_secret_value())
                champion_metrics = evaluate(champion, data.test)
            except ModelRefused as exc:  # e.g. an older feature schema: it cannot be compared, nor served
                self.progress(f"champion {champion_info.version} not comparable: {exc}")
        passed, why = promotion_gate(champion_metrics, result.metrics, max_regression=self.o.max_regression)
        gate = {"passed": passed, "reason": why, "trigger": trigger, "request": reason,
                "champion": champion_info.version if champion_info else None,
                "approval": "required" if self.o.require_approval else "not required"}
        # What it trained on travels with the version (`streamguard models show`): the live rows by label too.
        info = register_trained(self.store, result, name=name, feature_set="all",
                                extra={"gate": gate, "data": data.description},
                                secret=self.s.signing_secret.get_secret_value(),
                                description=data.description)
        took = time.monotonic() - started
        self.metrics.seconds.observe(took)
        if not passed:
            self.metrics.runs.labels(trigger, "kept").inc()
            detail = f"trained {info.version} in {took:.0f} s; kept {gate['champion']}: {why}"
            self.progress(detail)
            return {"outcome": "kept", "version": info.version, "detail": detail}
        if self.o.require_approval:
            self.metrics.runs.labels(trigger, "awaiting_approval").inc()
            detail = (f"trained {info.version} in {took:.0f} s; passed the gate ({why}); not promoted: awaiting an "
                      f"operator's `streamguard control promote {info.version}`")
            self.progress(detail)
            return {"outcome": "awaiting_approval", "version": info.version, "detail": detail}
        self.store.activate(name, info.version)
        self._send(self.names.retrain, b"announce", Command(
            op="announce", version=info.version, sha256=info.sha256,
            feature_schema_version=info.feature_schema_version))
        self.metrics.runs.labels(trigger, "promoted").inc()
        detail = f"trained {info.version} in {took:.0f} s; promoted and announced ({why})"
        self.progress(detail)
        return {"outcome": "promoted", "version": info.version, "detail": detail}

    def _send(self, topic: str, key: bytes, command: Command) -> None:
        env = sign(command, self.s.signing_secret.get_secret_value(), now_ms=self._now_ms(), app_id=self.s.app_id,
                   purpose="models" if topic == self.names.retrain else "control", issuer=self.worker_id)
        self._produce(topic, key, env.model_dump_json().encode())

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        if self.producer is None:
            from confluent_kafka import Producer

            self.producer = Producer({**client_conf(self.s.kafka_bootstrap), "enable.idempotence": True,
                                      "log_level": 0})
        self.producer.produce(topic, value, key)
        if self.producer.flush(30) != 0:
            raise StreamsError(f"could not deliver to {topic} within 30 s")

    def _reply(self, env: Envelope | None, outcome: str, reason: str, detail: str) -> None:
        active = self.store.active(self.s.model_name)
        reply = StatusReply(worker=self.worker_id, app_id="retrain-worker", at_ms=self._now_ms(),
                            nonce=env.nonce if env else None, op=env.command.op if env else "retrain",
                            outcome=outcome, reason=reason,
                            detail=detail,
                            state={"model": {"name": self.s.model_name, "version": active.version if active else None}})
        self._produce(self.names.status, self.worker_id.encode(), reply.model_dump_json().encode())
        audit = audit_record(reply, issuer=env.issuer if env else "retrain-worker", verified=env is not None,
                             origin=f"retrain/{self.runs}")
        try:
            self._produce(self.names.audit, audit.audit_id.encode(), audit.model_dump_json().encode())
        except StreamsError as exc:  # the run's outcome stands; the status reply above has it
            log.error("audit record not written: %s", exc)

    def handle(self, raw: bytes, purpose: Purpose = "control") -> None:
        """Act on one message of the control or retrain (`models`) topic (only signed `retrain` requests matter)."""
        try:
            env = self.verifier.verify(raw, now_ms=self._now_ms(), purpose=purpose)
        except ControlRejected as exc:
            self.metrics.requests.labels("rejected").inc()
            log.warning("message refused (%s): %s", exc.reason, exc.detail)
            return
        if env.command.op == "label":
            # Read back from the control topic by every run (`streams.live`); answered here so the
            # analyst sees it was taken.
            self._reply(env, "applied", "label", "recorded: the next retrain run uses it")
            return
        if env.command.op != "retrain":
            return
        operator = not env.issuer.startswith("worker:")
        trigger = "operator" if operator else "drift"
        if not operator and self._cooling_down():
            self.metrics.requests.labels("coalesced").inc()
            log.info("retrain request from %s coalesced: a run finished less than %.0f s ago", env.issuer,
                     self.s.retrain_min_interval_s)
            return
        self.metrics.requests.labels("accepted").inc()
        self._run(trigger, env.command.reason or "requested", env)

    def _cooling_down(self) -> bool:
        last = self.last_run_monotonic
        return last is not None and time.monotonic() - last < self.s.retrain_min_interval_s

    def _run(self, trigger: str, reason: str, env: Envelope | None) -> None:
        try:
            out = self.retrain(trigger, reason)
        except Exception as exc:
            self.metrics.runs.labels(trigger, "failed").inc()
            log.exception("retrain failed")
            self._reply(env, "failed", "retrain", f"{type(exc).__name__}: {exc}")
            return
        self._reply(env, "applied", out["outcome"], out["detail"])

    def run(self, *, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Consume triggers until `should_stop()`; new messages only (history is not re-run)."""
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        consumer = Consumer({**client_conf(self.s.kafka_bootstrap), "group.id": f"{self.worker_id}-reader",
                             "enable.auto.commit": False, "log_level": 0})
        try:
            topics = [self.names.control, self.names.retrain]
            md = consumer.list_topics(timeout=10)
            missing = [t for t in topics if t not in md.topics]
            if missing:
                raise StreamsError(f"topics missing: {', '.join(missing)} (start a worker first, or create them)")
            consumer.assign([TopicPartition(t, p, OFFSET_END) for t in topics for p in md.topics[t].partitions])
            self.progress(f"waiting for retrain requests on {', '.join(topics)}"
                          + (f"; every {self.s.auto_retrain_hours:g} h" if self.s.auto_retrain_hours else ""))
            interval_s = self.s.auto_retrain_hours * 3600
            next_interval = time.monotonic() + interval_s if interval_s else None
            while not should_stop():
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    self.handle(msg.value() or b"", "models" if msg.topic() == self.names.retrain else "control")
                if next_interval is not None and time.monotonic() >= next_interval:
                    next_interval = time.monotonic() + interval_s
                    if not self._cooling_down():
                        self._run("interval", f"every {self.s.auto_retrain_hours:g} h", None)
        finally:
            consumer.close()
            if self.producer is not None:
                self.producer.flush(10)

