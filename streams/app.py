"""The composition root of a `streamguard worker`: the Faust app, its topics and tables, the stages wired in.

    logs.raw, flows.raw ─ingest (own consumer)─► <app>-entity-hops (partitioned by entity) ─hop─► ... ─► <app>-to-score
    <app>-to-score ─score (micro-batches)─► threats.enriched, events.scored, <app>-healing (1 partition)
    <app>-healing ─heal─► actions.healing          ingest failures ─► ops.deadletter

What each stage does lives in `streams.agents` (one module per stage, over one shared
`StageContext`); event-time order across partitions and workers in `streams.ordering`; what
is served (bundle, challenger, threshold, policy) in `streams.serving`; operator commands in
`streams.operations`; the web pages in `streams.web`; every touch of faust's internals in
`streams.faust`. This module only builds and connects them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import faust

from scoring.bundle import ModelBundle

from . import faust as faust_patches
from .agents.context import StageContext, Tables, Topics
from .agents.heal import HealStage
from .agents.hop import HopStage
from .agents.ingest import IngestStage
from .agents.raw_reader import RawReader
from .agents.score import ScoreStage
from .agents.sink import SinkStage
from .api import register_api
from .faust.delivery import DeliveryWatch
from .kafka import faust_credentials
from .metrics import Metrics
from .model_store import open_store
from .operations import Operations
from .operator_state import state_topic
from .ordering.runtime import ALIGN_EVERY_S, Ordering
from .reader import keep_running
from .serving import Serving
from .settings import Settings
from .topics import topic_names
from .web import health, register_pages

if TYPE_CHECKING:
    from registry import ModelStore

__all__ = ["Pipeline"]

_STREAM_BUFFER = 256
_FETCH_BYTES = 128 * 1024  # per partition and fetch
PRODUCER_MAX_REQUEST = 4 * 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _faust_app(s: Settings) -> faust.App:
    """The Faust app for these settings (no topics, tables or agents yet)."""
    return faust.App(
        s.app_id,
        broker=s.faust_broker,
        broker_credentials=faust_credentials(s),
        store="memory://",
        datadir=str(s.data_dir),
        topic_partitions=s.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=s.metrics_port != 0,
        web_port=s.metrics_port or 6066,
        web_bind=s.metrics_host,
        # Dead letters keep up to 256 KiB of the original; threats are a few KiB.
        producer_max_request_size=PRODUCER_MAX_REQUEST,
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


def _declare(app: faust.App, s: Settings) -> tuple[Topics, Tables]:
    """The worker's topics and tables."""
    names = topic_names(s)
    n = s.topic_partitions
    raw = dict(key_serializer="raw", value_serializer="raw")
    internal = s.topic(s.app_id)
    topics = Topics(
        raw=app.topic(names.logs_raw, names.flows_raw, **raw),
        hops=app.topic(f"{internal}-entity-hops", internal=True, partitions=n, **raw),
        to_score=app.topic(f"{internal}-to-score", internal=True, partitions=n, **raw),
        healing=app.topic(f"{internal}-healing", internal=True, partitions=1, **raw),
        # Each worker's event-time floor, for the others' input alignment (see `streams.ordering`).
        watermarks=app.topic(f"{internal}-watermarks", internal=True, partitions=1, retention=timedelta(hours=1),
                             **raw),
        threats=app.topic(names.threats, **raw),
        actions=app.topic(names.actions, **raw),
        deadletter=app.topic(names.deadletter, **raw),
        scored=app.topic(names.scored, **raw),
        shadow=app.topic(names.shadow, **raw),
        retrain=app.topic(names.retrain, **raw),
        incidents=app.topic(names.incidents, **raw),
        audit=app.topic(names.audit, **raw),
        control=app.topic(names.control, **raw),
        sample=app.topic(names.sample, **raw),
    )
    tables = Tables(
        # Each hop partition's window snapshot, in chunks (`agents.windows`): keys land in that partition.
        windows=app.Table("window-snapshots", default=None, partitions=n, key_type=bytes, value_type=bytes,
                          use_partitioner=True),
        healing=app.Table("healing-state", default=None, partitions=1, key_type=bytes, use_partitioner=True),
    )
    return topics, tables


class Pipeline:
    """One worker's Faust app, built from settings and the bundle to serve."""

    def __init__(self, settings: Settings, bundle: ModelBundle, *, clock: Callable[[], datetime] = _utcnow,
                 store: ModelStore | None = None, max_record_bytes: int | None = None) -> None:
        s = self.settings = settings
        self._store = store
        self.metrics = Metrics()
        self.serving = Serving(s, bundle, self.metrics)
        faust_patches.apply(on_skip=self.metrics.rebalance_refetch.inc)
        self.app = app = _faust_app(s)
        topics, tables = _declare(app, s)
        self.ctx = ctx = StageContext(app=app, settings=s, names=topic_names(s), topics=topics, tables=tables,
                                      metrics=self.metrics, clock=clock, delivery=DeliveryWatch(app, self.metrics),
                                      worker_id=f"{socket.gethostname()}:{os.getpid()}",
                                      max_record_bytes=max_record_bytes or s.max_record_bytes or PRODUCER_MAX_REQUEST)
        self.started_monotonic = time.monotonic()
        self.ordering = Ordering(ctx)
        self.ordering.reader = reader = RawReader(s, [ctx.names.logs_raw, ctx.names.flows_raw])
        self.ingest = IngestStage(ctx, self.ordering, reader)
        self.hop = HopStage(ctx, self.ordering)
        self.score = ScoreStage(ctx, self.serving)
        self.heal = HealStage(ctx, self.serving)
        self.operations = Operations(ctx, self.serving, lambda: self.store, state_topic=state_topic(s))
        self.score.on_rollback = self.operations.guard_rollback
        self._wire()

    def internal_topics(self) -> list[tuple[str, int, dict[str, str]]]:
        """(name, partitions, config) of each internal topic and table changelog, as Faust would create it.

        The worker creates them before Faust starts: a topic Faust creates while its consumer
        subscribes can be missing from the first metadata, and aiokafka then ignores it until its
        next refresh (5 minutes): the stage reading it stands still (seen on a fresh broker).
        """
        t, tables = self.ctx.topics, self.ctx.tables
        out = []
        for topic in (t.hops, t.to_score, t.healing, t.watermarks, tables.windows.changelog_topic,
                      tables.healing.changelog_topic):
            config = {k: str(v) for k, v in (topic.config or {}).items()}
            policy = ",".join(p for p, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on)
            if policy:
                config["cleanup.policy"] = policy
            if topic.retention:
                r = topic.retention
                config["retention.ms"] = str(int((r.total_seconds() if isinstance(r, timedelta) else float(r)) * 1000))
            out.append((topic.get_topic_name(), topic.partitions or self.settings.topic_partitions, config))
        return out

    @property
    def store(self) -> ModelStore:
        """The model store new versions are fetched from (opened on first use)."""
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def _wire(self) -> None:
        """Register the agents, timers, tasks and pages."""
        app, s, topics = self.app, self.settings, self.ctx.topics
        # Raw input goes around Faust's per-message stream path (see `agents.raw_reader`).
        app.task(self._ingest_task)
        app.agent(topics.hops, name="entity-hop")(self.hop.run)
        app.agent(topics.to_score, name="score")(self.score.run)
        app.agent(topics.healing, name="heal")(self.heal.run)
        app.timer(5.0, name="expire-blocks")(self.heal.expire_tick)
        app.task(self.operations.run)
        app.timer(30.0, name="sweep-entities")(self.hop.sweep)
        app.task(self.hop.checkpoint_task)
        stages_by_topic = {topics.hops.get_topic_name(): "entity-hop", topics.to_score.get_topic_name(): "score",
                           topics.healing.get_topic_name(): "heal"}

        async def stall_watch() -> None:
            self.ctx.delivery.stall_tick(stages_by_topic)

        app.timer(5.0, name="stall-watch")(stall_watch)
        if s.max_input_skew_s > 0:
            app.timer(ALIGN_EVERY_S, name="align-inputs")(self.ordering.align_tick)
            app.task(self.hop.release_task)
            app.task(self.ordering.watermarks_task)
        if s.mongo_uri is not None and s.mongo_sink:
            sink = SinkStage(self.ctx)
            app.agent(topics.threats, name="sink-threats")(sink.run_threats)
            app.agent(topics.actions, name="sink-actions")(sink.run_actions)
            app.agent(topics.incidents, name="sink-incidents")(sink.run_incidents)
            app.agent(topics.audit, name="sink-audit")(sink.run_audit)
            app.timer(60.0, name="sink-purge")(sink.purge_tick)
        register_pages(app, self.metrics, self._health, debug=s.debug_pages)
        register_api(app, s)

    async def _ingest_task(self) -> None:
        await keep_running("raw input", self.ingest.run)

    def _health(self) -> tuple[dict[str, Any], int]:
        return health(self.app, self.serving, last_input_monotonic=self.ingest.last_input_monotonic,
                      started_monotonic=self.started_monotonic)
