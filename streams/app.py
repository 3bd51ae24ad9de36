"""The Faust app: topics, tables, agents, timers and web pages of a `streamguard worker`.

Agents only move data; what they do to it lives in `streams.stages` and the pure packages.

    logs.raw, flows.raw ─ingest─► <app>-entity-hops (partitioned by entity) ─hop─► ... ─► <app>-to-score
    <app>-to-score ─score (micro-batches)─► threats.enriched, events.scored, <app>-healing (1 partition)
    <app>-healing ─heal─► actions.healing          ingest failures ─► ops.deadletter

An event that belongs to several entities (source, destination, user, service) visits each
one's partition in turn, so every entity's state is updated by the worker that owns it.
Internal messages carry a batch of hops each, packed per destination partition
(`stages.Outbox`), so Kafka and Faust costs are paid per batch rather than per event. The
hop stage applies hops in event-time order across partitions and workers (`streams._hold`),
and ingest reads no raw partition too far ahead of the others (`streams._align`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter as _Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import faust
import orjson
from faust.types import TP

from features.entities import EntityState
from features.extract import FEATURE_NAMES
from features.parsing import TimeBounds
from features.windows import WindowConfig
from scoring.bundle import ModelBundle
from scoring.challenger import Comparison
from scoring.drift import DriftMonitor
from scoring.healing import HealingState, PolicyConfig, Threat, decide, expire, release, validate

from . import _faust_fixes, sink, stages
from ._align import EventTimeAligner, WatermarkBoard
from ._hold import HopHold
from ._offsets import OffsetWatch, StallWatch
from ._states import DecodedStates
from .control import Command, sign
from .errors import StreamsError
from .metrics import Metrics
from .models import open_store
from .operations import Operations
from .settings import Settings
from .topics import topic_names
from .wire import DeadLetter, HealingAction, dead_letter

if TYPE_CHECKING:
    from registry import ModelStore

__all__ = ["Pipeline"]

log = logging.getLogger("streamguard.worker")

_HEALING_KEY = b"policy-state"
_INGEST_BATCH = 1000  # raw messages per ingest batch
_STREAM_BUFFER = 256
_FETCH_BYTES = 128 * 1024  # per partition and fetch
_ALIGN_EVERY_S = 0.5  # how often input alignment runs without input, and floors are reported
_DECODED_STATES_BYTES = 8 * 1024 * 1024  # packed size of the states kept decoded between hop batches
_HOP_BATCH = 8  # internal messages (each up to `stages.MAX_HOPS_PER_MESSAGE` hops) per hop batch
_HOLD_SLACK_MS = 1_000  # held hops this far above the floor go (see `HopHold`)
_MAX_HELD_HOPS = 10_000  # beyond this, the lowest held hops go regardless (memory)
_RELEASE_EVERY_S = 0.1
_RELEASE_MAX_HOPS = 4_000  # hops applied as one batch (one changelog record per entity touched)
_REPORT_MIN_S = 0.02  # floors change with every release round; tell the others at most this often


def _consumer_state(app: faust.App) -> str:
    """Per assigned partition: committed, read and fetch positions, acks in flight, pause flags."""
    try:
        c = app.consumer
        inner = c._thread._consumer  # the aiokafka consumer
        assignment = inner._subscription.subscription.assignment
        lines = [f"flow_control active={app.flow_control.is_active()} generation={app.consumer_generation_id}"]
        for tp in sorted(assignment.tps, key=lambda t: (t.topic, t.partition)):
            st = assignment.state_value(tp)
            acked = c._acked.get(tp) or []
            lines.append(f"{tp.topic}[{tp.partition}] committed={c._committed_offset.get(tp)} "
                         f"read={c._read_offset.get(tp)} position={st.position if st.has_valid_position else None} "
                         f"paused={st.paused} acked={len(acked)}:{min(acked) if acked else None} "
                         f"gaps={len(c._gap.get(tp) or [])} rewind={c.__dict__.get('_sg_rewind', {}).get(tp)}")
        return "\n".join(lines) + "\n"
    except Exception as exc:  # noqa: BLE001 - a diagnostic page must not fail on faust internals
        return f"consumer state unavailable: {exc!r}\n"


def _task_stacks() -> str:
    """Where every asyncio task of the worker waits: what to look at when a stage stops moving."""
    lines = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()}")
        obj: Any = task.get_coro()
        # Follow the await chain down to the innermost waiting frame.
        for _ in range(40):
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
            if frame is None:
                if obj is not None:
                    lines.append(f"    awaiting {obj!r:.200}")
                break
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            obj = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
    return "\n".join(lines) + "\n"


def _lowest(*floors: int | None) -> int | None:
    """The lowest of the event-time floors that exist (None: none does)."""
    known = [f for f in floors if f is not None]
    return min(known) if known else None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _action_record(a: Any) -> HealingAction:
    return HealingAction(
        action_id=a.action_id, action=a.action, target=a.target, target_type=a.target_type, reason=a.reason,
        risk=a.risk, ttl_s=a.ttl_s, expires_at_ms=a.expires_at_ms, dry_run=a.dry_run, degraded=a.degraded,
        threat_event_ids=list(a.threat_event_ids), policy_version=a.policy_version, issued_at_ms=a.issued_at_ms,
    )


def _threat_to_dict(t: Threat) -> dict[str, Any]:
    return {"event_id": t.event_id, "label": t.label, "risk": t.risk, "target_type": t.target_type,
            "target": t.target, "evidence": t.evidence, "detected_at_ms": int(t.detected_at.timestamp() * 1000)}


def _threat_from_dict(d: dict[str, Any]) -> Threat:
    return Threat(event_id=d["event_id"], label=d["label"], risk=int(d["risk"]), target_type=d["target_type"],
                  target=d["target"], evidence={k: float(v) for k, v in d["evidence"].items()},
                  detected_at=datetime.fromtimestamp(d["detected_at_ms"] / 1000, tz=timezone.utc))


class Pipeline:
    """One worker's Faust app, built from settings and the bundle to serve."""

    def __init__(self, settings: Settings, bundle: ModelBundle, *, clock: Callable[[], datetime] = _utcnow,
                 store: ModelStore | None = None) -> None:
        self.settings = s = settings
        self._store = store
        self.clock = clock
        self.metrics = Metrics()
        self.challenger: ModelBundle | None = None  # scores beside the served bundle (shadow, A/B)
        self.ab_fraction = 0.0
        self.comparison = Comparison()  # champion against challenger since the challenger started
        self.serve(bundle)
        self.set_challenger(None)
        self.last_retrain_request_monotonic: float | None = None
        self.names = topic_names(s)
        self.window_cfg = WindowConfig(allowed_lateness_ms=s.allowed_lateness_s * 1000, idle_ttl_ms=s.idle_ttl_s * 1000)
        self.bounds = TimeBounds(max_future=timedelta(seconds=s.max_future_s),
                                 not_before=datetime.fromisoformat(s.not_before.replace("Z", "+00:00")))
        self.policy = PolicyConfig(dry_run=s.dry_run, allowlist=s.allowlist_cidrs,
                                   max_blocks_per_minute=s.max_blocks_per_minute)
        validate(self.policy)
        self.threshold = s.threat_threshold  # operators may change it through the control topic
        self.max_event_ms = 0
        self._offset_watch = OffsetWatch()
        self._stall_watch = StallWatch()
        self._aligner = EventTimeAligner(int(s.max_input_skew_s * 1000))
        self._align_paused: set[Any] = set()  # raw partitions the aligner paused
        self._align_floor: int | None = None  # this worker's floor, told to the others
        self._align_reported: int | None = None  # the floor last told
        self._decoded = DecodedStates(_DECODED_STATES_BYTES)
        self._hold_on = s.max_hold_s > 0 and s.max_input_skew_s > 0
        self._hold = HopHold(slack_ms=_HOLD_SLACK_MS, max_hold_s=s.max_hold_s, max_held=_MAX_HELD_HOPS)
        self._hop_lock = asyncio.Lock()  # hop batches and timed releases take turns
        self._hop_outbox = stages.Outbox(s.topic_partitions)
        self._hop_stream: Any = None
        self._reported_at = 0.0
        self._floor_moved = asyncio.Event()  # another worker reported its floor
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._board = WatermarkBoard(self.worker_id)
        # Event-time watermark per hop partition: idle expiry must use the clock of the
        # partition an entity lives on, or a partition that lags during catch-up would have
        # its entities expired by another partition's later events.
        self.partition_watermark: dict[int, int] = {}
        self.last_input_monotonic: float | None = None
        self.started_monotonic = time.monotonic()
        self._healing_state: HealingState | None = None
        self._sink: sink.MongoSink | None = None
        self.app = self._build_app()

    def serve(self, bundle: ModelBundle) -> None:
        """Serve `bundle` from the next batch on (a batch reads the bundle once), with fresh drift counts."""
        self.bundle = bundle
        self.metrics.model.info({"name": bundle.name, "version": bundle.version,
                                 "feature_schema_version": bundle.feature_schema_version})
        ref = bundle.metadata.get("drift_reference")
        self.drift = DriftMonitor(ref, FEATURE_NAMES, window=self.settings.drift_window_events) if ref else None

    def set_challenger(self, bundle: ModelBundle | None, fraction: float = 0.0) -> None:
        """Run `bundle` beside the served one from the next batch on (None: stop); A/B for `fraction` of entities."""
        if bundle is None or self.challenger is None or bundle.version != self.challenger.version:
            self.comparison = Comparison()
            for compared in ("label", "decision"):
                self.metrics.challenger_agreement.labels(compared).set(1.0)
        self.challenger = bundle
        self.ab_fraction = fraction if bundle is not None else 0.0
        self.metrics.challenger.info({"version": bundle.version if bundle else "none",
                                      "ab_fraction": f"{self.ab_fraction:g}"})

    def challenger_state(self) -> dict[str, Any] | None:
        """The challenger and how it compares, for /health and `status`."""
        if self.challenger is None:
            return None
        c = self.comparison
        return {"version": self.challenger.version, "ab_fraction": self.ab_fraction, "events": c.events,
                "label_agreement": round(c.label_agreement, 4), "decision_agreement": round(c.decision_agreement, 4),
                "champion_threats": c.champion_threats, "challenger_threats": c.challenger_threats,
                "mean_abs_risk_diff": round(c.mean_abs_risk_diff, 2)}

    @property
    def store(self) -> ModelStore:
        """The model store new versions are fetched from (opened on first use)."""
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    # --- construction -------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s = self.settings
        _faust_fixes.apply(on_skip=self.metrics.rebalance_refetch.inc)
        app = faust.App(
            s.app_id,
            broker=s.faust_broker,
            store="memory://",
            datadir=str(s.data_dir),
            topic_partitions=s.topic_partitions,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            web_enabled=s.metrics_port != 0,
            web_port=s.metrics_port or 6066,
            web_bind="0.0.0.0",
            # Dead letters keep up to 256 KiB of the original; threats are a few KiB.
            producer_max_request_size=4 * 1024 * 1024,
            # Small fetches keep partitions in step (less event-time skew between them while
            # catching up); a bigger single message is still returned whole by the broker.
            consumer_max_fetch_size=_FETCH_BYTES,
            # Messages a stream may hold unprocessed. Faust's 4,096 suits one event per message;
            # an internal message carries up to 1,000 hops, and 4,096 of those cost gigabytes.
            stream_buffer_maxsize=_STREAM_BUFFER,
            broker_commit_interval=1.0,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=s.session_timeout_s / 10,
            topic_allow_declare=True,
            autodiscover=False,
        )
        n = s.topic_partitions
        raw = dict(key_serializer="raw", value_serializer="raw")
        internal = s.topic(s.app_id)
        self.raw_topics = app.topic(self.names.logs_raw, self.names.flows_raw, **raw)
        self.hops = app.topic(f"{internal}-entity-hops", internal=True, partitions=n, **raw)
        self.to_score = app.topic(f"{internal}-to-score", internal=True, partitions=n, **raw)
        self.healing_in = app.topic(f"{internal}-healing", internal=True, partitions=1, **raw)
        # Each worker's event-time floor, for the others' input alignment (see `streams._align`).
        self.watermarks_t = app.topic(f"{internal}-watermarks", internal=True, partitions=1,
                                      retention=timedelta(hours=1), **raw)
        self.threats_t = app.topic(self.names.threats, **raw)
        self.actions_t = app.topic(self.names.actions, **raw)
        self.deadletter_t = app.topic(self.names.deadletter, **raw)
        self.scored_t = app.topic(self.names.scored, **raw)
        self.shadow_t = app.topic(self.names.shadow, **raw)
        self.retrain_t = app.topic(self.names.retrain, **raw)
        # Values are packed states (`EntityState.pack`), decoded only while a batch updates them.
        self.entities = app.Table("entity-state", default=None, partitions=n, key_type=bytes,
                                  value_type=bytes, use_partitioner=True)
        self.healing = app.Table("healing-state", default=None, partitions=1, key_type=bytes,
                                 use_partitioner=True)

        app.agent(self.raw_topics, name="ingest")(self._ingest_agent)
        app.agent(self.hops, name="entity-hop")(self._hop_agent)
        app.agent(self.to_score, name="score")(self._score_agent)
        app.agent(self.healing_in, name="heal")(self._heal_agent)
        app.timer(5.0, name="expire-blocks")(self._expire_timer)
        self.operations = Operations(self)
        app.task(self._operations_task)
        app.timer(30.0, name="sweep-entities")(self._sweep_timer)
        app.timer(5.0, name="stall-watch")(self._stall_timer)
        if s.max_input_skew_s > 0:
            app.timer(_ALIGN_EVERY_S, name="align-inputs")(self._align_timer)
            app.task(self._release_task)
            app.task(self._watermarks_task)
        if s.mongo_uri is not None and s.mongo_sink:
            app.agent(self.threats_t, name="sink-threats")(self._sink_threats_agent)
            app.agent(self.actions_t, name="sink-actions")(self._sink_actions_agent)
            app.timer(60.0, name="sink-purge")(self._sink_purge_timer)
        # Faust makes a page's function the `get` of a View class, so it must take (view, request).
        async def metrics_page(web: Any, request: Any) -> Any:
            return self._metrics_page(web)

        async def health_page(web: Any, request: Any) -> Any:
            return self._health_page(web)

        async def tasks_page(web: Any, request: Any) -> Any:
            text = _consumer_state(self.app) + "\n" + _task_stacks()
            return web.bytes(text.encode(), content_type="text/plain")

        app.page("/metrics")(metrics_page)
        app.page("/health")(health_page)
        app.page("/debug/tasks")(tasks_page)
        return app

    # --- agents -------------------------------------------------------------------------

    async def _ingest_agent(self, stream: faust.StreamT) -> None:
        m = self.metrics
        outbox = stages.Outbox(self.settings.topic_partitions)
        async for batch in stream.take_events(_INGEST_BATCH, within=0.05):
            self.last_input_monotonic = time.monotonic()
            for event in batch:
                msg = event.message
                kind = "logs" if msg.topic == self.names.logs_raw else "flows"
                m.events_in.labels(kind).inc()
                out = stages.ingest(event.value, input_kind=kind, topic=msg.topic, partition=msg.partition,
                                    offset=msg.offset, now=self.clock(), bounds=self.bounds)
                if isinstance(out, DeadLetter):
                    await self.deadletter_t.send(key=msg.topic.encode(), value=out.model_dump_json().encode())
                    m.deadletters.labels(out.reason).inc()
                    m.events.labels("deadlettered").inc()
                else:
                    outbox.add(out.hop, msg.partition)
                    self._aligner.observe(msg.tp, out.hop.message["ev"]["ts"])
            await self._send_outbox(outbox)
            self._align_inputs()

    def _align_inputs(self) -> None:
        """Pause raw partitions too far ahead of the event-time floor; resume those no longer ahead."""
        app = self.app
        consumer = app.consumer
        aligner, paused = self._aligner, self._align_paused
        if app.rebalancing or app.in_recovery or not app.flow_control.is_active():
            # A rebalance pauses and resumes every partition itself; start again afterwards.
            paused.clear()
            self._align_floor = None
            return
        raw = {self.names.logs_raw, self.names.flows_raw}
        hops = self.hops.get_topic_name()
        assigned = {tp for tp in consumer.assignment() if tp.topic in raw or tp.topic == hops}
        aligner.forget(assigned)
        backlogged = set()
        for tp in assigned:
            if tp.topic == hops and tp.partition in self.partition_watermark:
                aligner.observe(tp, self.partition_watermark[tp.partition])
            try:
                end, read = consumer.highwater(tp), consumer._read_offset.get(tp)
                if read is None:  # nothing delivered yet: reading starts at the committed offset
                    read = (consumer._committed_offset.get(tp) or 0) - 1
            except Exception:  # noqa: BLE001 - revoked meanwhile
                continue
            # Not fetched yet (no end known) counts as backlogged: such a partition holds the
            # others back until it has a time (see `EventTimeAligner.floor`).
            if end is None or read + 1 < end:
                backlogged.add(tp)
        now = time.monotonic()
        self._align_floor = aligner.floor(backlogged, now)
        pause = aligner.ahead(backlogged, now, pausable={tp for tp in assigned if tp.topic in raw},
                              elsewhere=_lowest(self._board.floor(now), self._hold.floor()))
        if paused - pause:
            consumer.resume_partitions(paused - pause)
        if pause:  # every time: faust re-activates a partition whose stream buffer drained
            consumer.pause_partitions(pause)
        paused.clear()
        paused.update(pause)
        self.metrics.inputs_paused.labels("ingest").set(len(pause))

    async def _align_timer(self) -> None:
        """Align again (ingest may be wholly paused, waiting on others) and tell the others our floor."""
        self._align_inputs()
        await self._report_floor()

    async def _report_floor(self, min_interval_s: float = 0.0) -> None:
        """Tell the other workers this worker's floor: its slowest backlogged partition, or its lowest held hop."""
        now = time.monotonic()
        if now - self._reported_at < min_interval_s:
            return
        floor = _lowest(self._align_floor, self._hold.floor())  # nothing is held with holding off
        if floor is None and self._align_reported is None:
            return  # no backlog, and the others know: a floor unrepeated for 5 s is dropped anyway
        if min_interval_s and floor == self._align_reported:
            return
        report = {"worker": self.worker_id, "floor_ms": floor}
        self._reported_at = now
        await self.watermarks_t.send(key=self.worker_id.encode(), value=orjson.dumps(report))
        self._align_reported = floor

    async def _watermarks_task(self) -> None:
        """Read every worker's floor into the board (no consumer group: every worker reads all)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        await self.watermarks_t.maybe_declare()
        tp = TopicPartition(self.watermarks_t.get_topic_name(), 0)
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                        enable_auto_commit=False)
            try:
                await consumer.start()
                consumer.assign([tp])
                await consumer.seek_to_end(tp)  # only fresh floors matter
                while True:
                    batch = await consumer.getmany(timeout_ms=1000)
                    now = time.monotonic()
                    for record in batch.get(tp, []):
                        try:
                            report = orjson.loads(record.value or b"")
                            floor = report["floor_ms"]
                            worker = str(report["worker"])
                            self._board.receive(worker, None if floor is None else int(floor), now)
                            if worker != self.worker_id:
                                self._floor_moved.set()
                        except Exception:  # noqa: BLE001 - a bad report costs itself only
                            log.warning("ignored a malformed watermark report at offset %d", record.offset)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - alignment is an optimisation of order; keep trying
                log.exception("watermark consumer failed; restarting in 2 s")
                await asyncio.sleep(2.0)
            finally:
                await consumer.stop()

    async def _send_outbox(self, outbox: stages.Outbox) -> None:
        """Send a stage's packed hops; the batch is acknowledged only after this returns."""
        for where, partition, value in outbox.drain():
            topic = self.hops if where == "hops" else self.to_score
            await topic.send(value=value, partition=partition)

    def _check_offsets(self, stage: str, events: Any) -> None:
        """Count and log input offsets this stage never received (see `streams._offsets`).

        Only for our internal topics: raw topics may have holes by design (transaction markers,
        compaction).
        """
        committed = self.app.consumer._committed_offset
        now = time.monotonic()
        for event in events:
            msg = event.message
            self._stall_watch.received(msg.topic, msg.partition, now)
            missing = self._offset_watch.observe(stage, msg.topic, msg.partition, msg.offset, msg.generation_id,
                                                 committed.get(msg.tp))
            if missing:
                self.metrics.offset_gaps.labels(stage).inc(missing)
                log.warning("%s: %s[%d] offsets %d..%d never reached the stage; fetching them again", stage,
                            msg.topic, msg.partition, msg.offset - missing, msg.offset - 1)
                if self._offset_watch.first_time(msg.topic, msg.partition, msg.offset - missing):
                    _faust_fixes.request_rewind(self.app.consumer, msg.tp, msg.offset - missing)

    async def _hop_agent(self, stream: faust.StreamT) -> None:
        # Inputs are acknowledged by hand: a message is done once all its hops are sent on,
        # which waits for the event-time floor (see `streams._hold`).
        self._hop_stream = stream
        async for batch in stream.noack_take(_HOP_BATCH, within=0.05):
            async with self._hop_lock:
                await self._hold_hops(batch)
                try:
                    await self._release_hops()
                except Exception:  # noqa: BLE001 - the hops are held again; the release task retries
                    log.exception("applying released hops failed; they are held and tried again")

    async def _hold_hops(self, batch: Any) -> None:
        """Hold the hops of a batch of hop messages until the event-time floor passes them."""
        self._check_offsets("entity-hop", batch)
        now = time.monotonic()
        for event in batch:
            part, offset = event.message.partition, event.message.offset
            held: list[tuple[int, Any]] = []
            try:
                hops = stages.unpack(event.value)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the stage
                await self._dead_letter_internal(event.message, event.value, exc)
                hops = []
            for index, msg in enumerate(hops):
                try:
                    key = msg["route"][msg["i"]][1].encode()
                    ts = int(msg["ev"]["ts"])
                except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                    await self._dead_letter_internal(event.message, stages.encode(msg), exc)
                    continue
                # The partition's time is what it has read, held or not: the input aligner and
                # the floor compare partitions by how far their reading got.
                if ts > self.partition_watermark.get(part, 0):
                    self.partition_watermark[part] = ts
                self.max_event_ms = max(self.max_event_ms, ts)
                # Held as JSON, thousands may wait: ~0.9 KB a hop, against ~2.3 KB decoded (measured).
                held.append((ts, (key, stages.encode(msg), stages.position(offset, index), event.message)))
            self._hold.add(part, event, held, now, event.message.generation_id)

    async def _release_hops(self) -> None:
        """Apply the held hops the event-time floor has passed to their entities, send them on, acknowledge.

        As a batch did before holding: one changelog record per entity, written durably before
        any hop goes on and before its input is acknowledged.
        """
        hold, app = self._hold, self.app
        # Faust gives up partitions, and stops, only once every message in flight is
        # acknowledged (`stream_wait_empty`): then everything held goes at once, out of order.
        flush = app.rebalancing or app.should_stop or not app.flow_control.is_active()
        floor = self._release_floor() if self._hold_on and not flush else None
        hops_topic = self.hops.get_topic_name()
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == hops_topic}
        hold.drop(generation=app.consumer_generation_id, keep=assigned)
        while True:
            out = hold.release(floor, time.monotonic(), flush=flush and self._hold_on, max_hops=_RELEASE_MAX_HOPS)
            try:
                await self._apply_released(out)
            except BaseException:
                # Held again, their inputs unacknowledged: the next round applies them (a hop
                # counted already is recognised, one sent already goes again with its id).
                hold.give_back(out)
                self.metrics.hops_held.set(len(hold))
                raise
            if len(out.hops) < _RELEASE_MAX_HOPS:
                break
        self.metrics.hops_held.set(len(hold))
        if self._hold_on:
            await self._report_floor(min_interval_s=_REPORT_MIN_S)

    async def _apply_released(self, out: Any) -> None:
        """Apply one release's hops as a batch: states written durably, hops sent on, inputs acknowledged."""
        outbox = self._hop_outbox
        touched: dict[bytes, EntityState] = {}
        for part, (key, raw, pos, message) in out.hops:
            try:
                msg = stages.decode(raw)
                state = touched.get(key)
                if state is None:
                    state = self._entity_state(key)
                state, nxt, outcome = stages.apply_hop(msg, state, cfg=self.window_cfg, at=(f"hops:{part}", pos))
            except Exception as exc:  # noqa: BLE001 - one bad hop must not stop the stage
                await self._dead_letter_internal(message, raw, exc)
                continue
            if outcome != "counted":
                self.metrics.hop_outcomes.labels(outcome).inc()
            touched[key] = state
            outbox.add(nxt, part)
        packed = [(key, state.pack()) for key, state in touched.items()]
        await self._write_durably(self.entities, packed)
        for key, value in packed:
            self._decoded.put(key, value, touched[key])
        await self._send_outbox(outbox)
        for event in out.done:
            await self._hop_stream.ack(event)
        if out.forced:
            self.metrics.hops_forced.inc(out.forced)

    def _release_floor(self) -> int | None:
        """Event time below which nothing more can reach this worker's entities (None: nothing is behind).

        This worker's backlogged partitions and other workers' floors; this worker's own held
        hops are released lowest first (`HopHold.release`).
        """
        return _lowest(self._align_floor, self._board.floor(time.monotonic()))

    async def _release_task(self) -> None:
        """Release held hops when another worker's floor moves, or every 0.1 s, when no hop batch comes.

        Workers holding hops wait on each other's floors in turn, so each report answered at
        once, not at the next tick, is what keeps a backlog moving.
        """
        while True:
            try:
                await asyncio.wait_for(self._floor_moved.wait(), timeout=_RELEASE_EVERY_S)
            except asyncio.TimeoutError:
                pass
            self._floor_moved.clear()
            try:
                if self._hold.has_entries():
                    async with self._hop_lock:
                        await self._release_hops()
                # A release round's report may have been cut by the interval: a held floor must not go stale.
                await self._report_floor(min_interval_s=_REPORT_MIN_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again; the hop agent releases too
                log.exception("releasing held hops failed")
                await asyncio.sleep(_RELEASE_EVERY_S)

    def _entity_state(self, key: bytes) -> EntityState | None:
        """The entity's state from the table, decoded; None if it has none (or it was unreadable)."""
        packed = self.entities.get(key)
        if packed is None:
            return None
        state = self._decoded.get(key, packed)
        if state is not None:
            return state
        try:
            return EntityState.unpack(packed, self.window_cfg)
        except Exception as exc:  # noqa: BLE001 - a corrupt record must not stop every event of the entity
            log.error("entity %r: unreadable state in the table (%r); starting it afresh", key, exc)
            self.metrics.states_unreadable.inc()
            return None

    async def _score_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        # Each message holds many events: take few messages, score them in batches of `batch_size`.
        async for batch in stream.take_events(max(1, s.batch_size // 100), within=s.batch_timeout_s):
            self._check_offsets("score", batch)
            pending: list[tuple[dict[str, Any], Any]] = []
            for event in batch:
                try:
                    pending += [(msg, event) for msg in stages.unpack(event.value)]
                except Exception as exc:  # noqa: BLE001 - a corrupt internal message costs itself only
                    await self._dead_letter_internal(event.message, event.value, exc)
            for start in range(0, len(pending), s.batch_size):
                chunk = pending[start:start + s.batch_size]
                await self._score_chunk([msg for msg, _ in chunk], [event for _, event in chunk])

    async def _score_chunk(self, messages: list[dict[str, Any]], good: list[Any]) -> None:
        """Score one micro-batch and send its outputs; `good` is the Faust event each message came in."""
        s, m = self.settings, self.metrics
        out = await self._score_isolating(messages, good)
        if out is None:
            return
        self._count_challenge(out)  # before any await: the challenger may change while we send
        messages = [msg for msg in messages if msg is not None]
        m.batch_size.observe(len(messages))
        m.scoring_seconds.observe(out.model_seconds)
        for key, value, view, rec in out.threats:
            await self.threats_t.send(key=key, value=value)
            await self.healing_in.send(key=b"threats", value=orjson.dumps(_threat_to_dict(view)))
            m.threats.labels(rec.severity, rec.ml_predicted_label).inc()
        for key, value in out.scored:
            await self.scored_t.send(key=key, value=value)
        for key, value in out.shadow:
            await self.shadow_t.send(key=key, value=value)
        for lag, plag in zip(out.lags_s, out.processing_lags_s):
            m.lag.observe(max(lag, 0.0))
            m.processing_lag.observe(max(plag, 0.0))
        m.events.labels("scored").inc(len(messages))
        if self.drift is not None:
            await self._watch_drift(out.x)

    def _count_challenge(self, out: stages.ScoredBatch) -> None:
        """Export how the challenger compares with the champion on this batch."""
        m, c = self.metrics, out.comparison
        m.served.labels("challenger").inc(out.served_by_challenger)
        m.served.labels("champion").inc(len(out.results) - out.served_by_challenger)
        if c is None:
            return
        for a, b in zip(out.champion, out.challenger):
            m.challenger_events.labels(str(a.label == b.label).lower(),
                                       str((a.risk >= self.threshold) == (b.risk >= self.threshold)).lower()).inc()
            m.model_risk.labels("champion").observe(a.risk)
            m.model_risk.labels("challenger").observe(b.risk)
        for role, mix in (("champion", c.champion_labels), ("challenger", c.challenger_labels)):
            for label, n in mix.items():
                m.model_labels.labels(role, label).inc(n)
        self.comparison.add(c)
        m.challenger_agreement.labels("label").set(self.comparison.label_agreement)
        m.challenger_agreement.labels("decision").set(self.comparison.decision_agreement)

    async def _watch_drift(self, x: Any) -> None:
        """Count rows into the drift window; at its end export the PSI and, past the threshold, ask for a retrain."""
        s, m = self.settings, self.metrics
        report = self.drift.observe(x) if self.drift is not None else None
        if report is None:
            return
        for feature, value in report.items():
            m.feature_psi.labels(feature).set(value)
        overall = DriftMonitor.overall(report)
        feature, worst = DriftMonitor.worst(report)
        m.drift_psi.set(overall)
        # The first window after a start or a swap is not judged: entity windows are still filling
        # (on generator traffic its PSI runs up to twice that of later windows).
        if overall < s.drift_psi_threshold or (self.drift is not None and self.drift.completed < 2):
            return
        now = time.monotonic()
        last = self.last_retrain_request_monotonic
        if last is not None and now - last < s.drift_cooldown_s:
            return
        self.last_retrain_request_monotonic = now
        reason = (f"drift: mean feature PSI {overall:.3f} (threshold {s.drift_psi_threshold:g}; highest {worst:.3f} "
                  f"on {feature}) over the last {s.drift_window_events} events scored by {self.bundle.version}")
        env = sign(Command(op="retrain", reason=reason), s.signing_secret.get_secret_value(),
                   now_ms=int(self.clock().timestamp() * 1000), issuer=f"worker:{self.operations.worker_id}")
        await self.retrain_t.send(key=b"retrain", value=env.model_dump_json().encode())
        m.retrain_requests.labels("drift").inc()
        log.warning("retrain requested: %s", reason)

    async def _sink_threats_agent(self, stream: faust.StreamT) -> None:
        await self._sink_agent(stream, sink.THREATS, sink.threat_document)

    async def _sink_actions_agent(self, stream: faust.StreamT) -> None:
        await self._sink_agent(stream, sink.ACTIONS, sink.action_document)

    async def _sink_agent(self, stream: faust.StreamT, collection: str, to_doc: Callable[[bytes], dict]) -> None:
        """Copy an output topic into MongoDB in batches; a batch is acknowledged only once written."""
        m = self.metrics
        async for batch in stream.take_events(500, within=1.0):
            docs = []
            for event in batch:
                try:
                    docs.append(to_doc(event.value or b""))
                except ValueError as exc:  # someone else's record on our output topic
                    msg = event.message
                    m.deadletters.labels("unreadable_output").inc()
                    dl = dead_letter("unreadable_output", str(exc), topic=msg.topic, partition=msg.partition,
                                     offset=msg.offset, raw=event.value or b"",
                                     received_at_ms=int(self.clock().timestamp() * 1000))
                    await self.deadletter_t.send(key=msg.topic.encode(), value=dl.model_dump_json().encode())
            delay = 1.0
            while docs:
                try:
                    written = await asyncio.to_thread(self._sink_write, collection, docs)
                    m.sink_written.labels(collection).inc(written)
                    break
                except StreamsError as exc:  # MongoDB away: hold the batch (nothing is committed) and retry
                    m.sink_errors.labels(collection).inc()
                    log.warning("%s; retrying in %.0f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)

    def _sink_write(self, collection: str, docs: list[dict]) -> int:
        """Open the sink on first use (in a worker thread: connecting blocks), then write."""
        if self._sink is None:
            from .mongo import connect_mongo

            s = self.settings
            client = connect_mongo(s.mongo_uri.get_secret_value() if s.mongo_uri else "")
            self._sink = sink.MongoSink(client[s.mongo_database], ttl_days=s.mongo_ttl_days)
        return self._sink.write(collection, docs)

    async def _sink_purge_timer(self) -> None:
        if self._sink is None or not self.settings.mongo_ttl_days:
            return
        try:
            gone = await asyncio.to_thread(self._sink.purge, self.clock())
        except StreamsError as exc:
            log.warning("%s", exc)
            return
        if gone:
            log.info("purged %d expired threat/action documents", gone)

    async def _write_durably(self, table: Any, items: Any) -> None:
        """Set table keys and wait until the broker has their changelog records.

        `table[key] = value` only queues the changelog record, and Faust's flush before an
        offset commit can return with records still queued (it gives up after 0.1 s). A crash
        then loses state whose inputs are already committed. Waiting here, before the batch is
        acknowledged, closes that gap: committed input always has its state in the changelog.

        The records go straight to the producer, not through Faust's `send_soon` buffer: after
        a crash-restart, futures from that buffer were seen never to resolve, which stopped the
        stage for good (one partition, no error logged).
        """
        topic = table.changelog_topic
        name = topic.get_topic_name()
        producer = self.app.producer
        futures = []
        for key, value in items:
            table.data[key] = value
            k, _ = topic.prepare_key(key, table.key_serializer)
            v, _ = topic.prepare_value(value, table.value_serializer)
            futures.append(await producer.send(name, k, v, partition=None, timestamp=None, headers=None))
        if futures:
            await asyncio.gather(*futures)

    async def _dead_letter_internal(self, message: Any, value: bytes | None, exc: Exception) -> Any:
        """Dead-letter a message a stage could not process (a bug, not bad input); returns the send future."""
        log.exception("stage failed on %s[%s]@%s", message.topic, message.partition, message.offset)
        self.metrics.deadletters.labels("internal").inc()
        self.metrics.events.labels("deadlettered").inc()
        dl = dead_letter("internal", f"{type(exc).__name__}: {exc}", topic=message.topic, partition=message.partition,
                         offset=message.offset, raw=value or b"", received_at_ms=int(self.clock().timestamp() * 1000))
        return await self.deadletter_t.send(key=message.topic.encode(), value=dl.model_dump_json().encode())

    async def _score_isolating(self, messages: list[Any], events: list[Any]) -> Any:
        """Score a batch; if that fails, score one by one and dead-letter only the messages that fail."""
        s = self.settings
        try:
            return stages.score_messages(messages, self.bundle, threshold=self.threshold,
                                         emit_scored=s.emit_scored, now=self.clock(), **self._challenge())
        except Exception:  # noqa: BLE001 - find the culprit instead of losing or crashing the batch
            log.exception("scoring a batch of %d failed; retrying one by one", len(messages))
        keep = []
        for i, (msg, event) in enumerate(zip(messages, events)):
            try:
                stages.score_messages([msg], self.bundle, threshold=self.threshold, emit_scored=False, now=self.clock(),
                                      **self._challenge())
                keep.append(i)
            except Exception as exc:  # noqa: BLE001
                await self._dead_letter_internal(event.message, stages.encode(msg), exc)
                messages[i] = None
        if not keep:
            return None
        return stages.score_messages([messages[i] for i in keep], self.bundle, threshold=self.threshold,
                                     emit_scored=s.emit_scored, now=self.clock(), **self._challenge())

    def _challenge(self) -> dict[str, Any]:
        return {"challenger": self.challenger, "ab_fraction": self.ab_fraction,
                "emit_shadow": self.settings.emit_shadow}

    def _state(self) -> HealingState:
        if self._healing_state is None:
            data = self.healing.get(_HEALING_KEY)
            self._healing_state = HealingState.restore(data) if data else HealingState()
        return self._healing_state

    async def _emit_actions(self, actions: list[Any]) -> None:
        # The heal agent makes the policy state durable first: it remembers each threat's (and
        # each operator unblock's) actions, so the redelivered input gets the same ones again.
        for a in actions:
            rec = _action_record(a)
            await self.actions_t.send(key=a.target.encode(), value=rec.model_dump_json().encode())
            self.metrics.actions.labels(a.action, str(a.dry_run).lower()).inc()

    async def _heal_agent(self, stream: faust.StreamT) -> None:
        async for batch in stream.take_events(500, within=0.1):
            self._check_offsets("heal", batch)
            state = self._state()
            now = self.clock()
            actions = []
            for event in batch:
                try:
                    msg = orjson.loads(event.value)
                    if "unblock" in msg:  # an operator's request, relayed by the control consumer
                        actions.extend(release(state, msg["unblock"], self.policy, now))
                    else:
                        actions.extend(decide(_threat_from_dict(msg), state, self.policy, now))
                except Exception as exc:  # noqa: BLE001 - a corrupt internal message costs itself only
                    await self._dead_letter_internal(event.message, event.value, exc)
            await self._write_durably(self.healing, [(_HEALING_KEY, state.snapshot())])
            await self._emit_actions(actions)

    def _owns_healing(self) -> bool:
        return TP(self.healing_in.get_topic_name(), 0) in self.app.assignor.assigned_actives()

    async def _expire_timer(self) -> None:
        if not self._owns_healing():
            self._healing_state = None  # another worker owns it now; reload if it comes back
            return
        state = self._state()
        actions = expire(state, self.policy, self.clock())
        if actions:
            # Sent before the state forgets the blocks: a crash in between lifts them again,
            # as the same actions (an expiry is issued at the block's expiry time).
            await self._emit_actions(actions)
            await self._write_durably(self.healing, [(_HEALING_KEY, state.snapshot())])

    async def _operations_task(self) -> None:
        while True:
            try:
                await self.operations.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - operator commands must keep flowing after a broker hiccup
                log.exception("control consumer failed; restarting in 2 s")
                await asyncio.sleep(2.0)

    async def _stall_timer(self) -> None:
        """Fetch again a partition whose stage lost a message (see `StallWatch`).

        An internal partition left behind its end with nothing received; or any input
        partition, raw ones too, whose committed offset is held back by one message never
        acknowledged while later ones were (seen once on a raw partition after a rebalance,
        with two workers reading a backlog).
        """
        app, consumer = self.app, self.app.consumer
        if not app.flow_control.is_active() or app.rebalancing:
            self._stall_watch.reset()
            return
        stages_by_topic = {self.hops.get_topic_name(): "entity-hop", self.to_score.get_topic_name(): "score",
                           self.healing_in.get_topic_name(): "heal", self.names.logs_raw: "ingest",
                           self.names.flows_raw: "ingest"}
        now = time.monotonic()
        for tp in consumer.assignment():
            stage = stages_by_topic.get(tp.topic)
            if stage is None:
                continue
            try:
                committed, end = consumer._committed_offset.get(tp), consumer.highwater(tp)
                acked = consumer._acked.get(tp)
            except Exception:  # noqa: BLE001 - revoked meanwhile, or nothing fetched yet
                continue
            above = bool(acked) and committed is not None and min(acked) > committed
            if stage == "ingest" and not above:
                continue  # raw topics may have holes by design: only a commit held back is a stall
            if not self._stall_watch.stalled(tp.topic, tp.partition, committed, end, now, acked_above=above):
                continue
            if above and not self._offset_watch.first_time(tp.topic, tp.partition, committed):
                continue  # fetched again once already: a second time would only repeat the work
            why = "later offsets acknowledged" if above else "nothing received"
            log.warning("%s: %s[%d] committed %s of %s, %s for %.0f s; fetching again from %s", stage, tp.topic,
                        tp.partition, committed, end, why, self._stall_watch.after_s, committed)
            self.metrics.stalls.labels(stage).inc()
            _faust_fixes.request_rewind(consumer, tp, committed)

    async def _sweep_timer(self) -> None:
        """Drop entities idle (in event time) past the TTL; refresh the entity gauges."""
        if self.max_event_ms == 0:
            return
        assigned = {tp.partition for tp in self.app.assignor.assigned_actives()
                    if tp.topic == self.hops.get_topic_name()}
        n_parts = self.settings.topic_partitions
        from aiokafka.partitioner import DefaultPartitioner

        partitioner = DefaultPartitioner()
        roles: _Counter[str] = _Counter()
        dropped = 0
        for key in list(self.entities.keys()):
            # Keys of partitions this worker no longer owns may linger in memory: leave them.
            part = partitioner(key, list(range(n_parts)), list(range(n_parts)))
            if part not in assigned:
                continue
            packed = self.entities.get(key)
            if packed is None:
                continue
            try:
                role, last_seen = EntityState.peek(packed)
            except Exception:  # noqa: BLE001 - unreadable: the next update starts it afresh anyway
                continue
            if self.window_cfg.idle(last_seen, self.partition_watermark.get(part, 0)):
                del self.entities[key]
                dropped += 1
            else:
                roles[role] += 1
            await asyncio.sleep(0)  # a large table must not starve the agents
        for role in ("src", "dst", "user", "service"):
            self.metrics.entities.labels(role).set(roles[role])
        if dropped:
            log.info("dropped %d idle entities", dropped)

    # --- web ----------------------------------------------------------------------------

    def _metrics_page(self, web: Any) -> Any:
        return web.bytes(self.metrics.render(), content_type="text/plain; version=0.0.4")

    def _health_page(self, web: Any) -> Any:
        assigned = self.app.assignor.assigned_actives()
        idle = None if self.last_input_monotonic is None else round(time.monotonic() - self.last_input_monotonic, 3)
        consuming = bool(assigned) and self.app.consumer is not None
        body = {
            "status": "ok" if consuming else "starting",
            "consuming": consuming,
            "assigned_partitions": len(assigned),
            "seconds_since_last_input": idle,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "model": {"name": self.bundle.name, "version": self.bundle.version,
                      "feature_schema_version": self.bundle.feature_schema_version},
            "challenger": self.challenger_state(),
            "dry_run": self.policy.dry_run,
            "paused": self.policy.paused,
            "threat_threshold": self.threshold,
        }
        return web.json(body, status=200 if consuming else 503)
