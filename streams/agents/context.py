"""What every stage of a worker shares: the app, topics, tables, metrics, clock and send helpers.

Stages are small classes over one `StageContext`, the way quix-streams hands its managers a
processing context: none of them imports `streams.app`, and none builds a topic, a table or
a metric of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..faust.delivery import DeliveryWatch
from ..faust.internals import write_through
from ..internal import Outbox, encode
from ..metrics import Metrics
from ..settings import Settings
from ..topics import TopicNames
from ..wire import dead_letter
from .outgoing import Origin, Outgoing

__all__ = ["StageContext", "Tables", "Topics"]

log = logging.getLogger("streamguard.worker")


_OUTBOX = Origin("(outbox)")  # packed hops fit a message by construction


@dataclass(frozen=True, slots=True)
class Topics:
    """The Faust topic objects of one worker (see `streams.app` for what each carries)."""

    raw: Any  # logs.raw and flows.raw
    hops: Any  # <app>-entity-hops
    to_score: Any  # <app>-to-score
    healing: Any  # <app>-healing (1 partition)
    watermarks: Any  # <app>-watermarks (1 partition)
    threats: Any
    actions: Any
    deadletter: Any
    scored: Any
    shadow: Any
    retrain: Any
    # Last, with defaults: code that builds Topics positionally for one stage need not name them.
    incidents: Any = None  # threats.incidents (compacted)
    audit: Any = None  # ops.audit (compacted; the sink reads it)
    control: Any = None  # ops.control (the promotion guard's rollback goes there, signed)
    sample: Any = None  # features.sample (rows for retraining on live traffic)


@dataclass(frozen=True, slots=True)
class Tables:
    """The changelog-backed Faust tables of one worker."""

    windows: Any  # hop partition window snapshots, in chunks (`agents.windows`)
    healing: Any  # one key -> the healing policy's state snapshot


@dataclass(slots=True)
class StageContext:
    """Shared by the stages of one worker; built once by `streams.app.Pipeline`."""

    app: Any  # the faust.App
    settings: Settings
    names: TopicNames
    topics: Topics
    tables: Tables
    metrics: Metrics
    clock: Callable[[], datetime]
    delivery: DeliveryWatch
    worker_id: str
    # Largest key + value of a record we send (`streams.kafka.record_limit`): anything larger
    # would be refused by the producer or the broker, and a refused send must never stop a stage.
    max_record_bytes: int = 1024 * 1024

    def now_ms(self) -> int:
        """The clock's now, in ms since the epoch."""
        return int(self.clock().timestamp() * 1000)

    def outbox(self) -> Outbox:
        """An empty outbox whose messages fit the record limit."""
        return Outbox(self.settings.topic_partitions, max_bytes=self.max_record_bytes)

    def outgoing(self) -> Outgoing:
        """An empty batch of records to send (see `Outgoing`)."""
        return Outgoing(deadletter_topic=self.topics.deadletter, metrics=self.metrics,
                        max_record_bytes=self.max_record_bytes, now_ms=self.now_ms)

    async def dead_letter_internal(self, out: Outgoing, message: Any, value: bytes | None, exc: Exception) -> None:
        """Dead-letter a message a stage could not process (a bug, not bad input)."""
        log.exception("stage failed on %s[%s]@%s", message.topic, message.partition, message.offset)
        dl = dead_letter("internal", f"{type(exc).__name__}: {exc}", topic=message.topic, partition=message.partition,
                         offset=message.offset, raw=value or b"", received_at_ms=self.now_ms())
        await out.dead_letter(message.topic.encode(), dl)

    async def dead_letter_hop(self, out: Outgoing, message: Any, hop: dict[str, Any]) -> None:
        """Dead-letter a hop too large for any message (its event is not scored)."""
        self.metrics.records_too_large.labels("hop").inc()
        raw = encode(hop)
        dl = dead_letter("too_large", f"the hop of event {hop.get('id')} is {len(raw)} bytes; a message holds at most "
                         f"{self.max_record_bytes}", topic=message.topic, partition=message.partition,
                         offset=message.offset, raw=raw, received_at_ms=self.now_ms())
        await out.dead_letter(message.topic.encode(), dl)

    async def send_outbox(self, out: Outgoing, outbox: Outbox) -> None:
        """Queue a stage's packed hops (each message fits the record limit by construction)."""
        for where, partition, value in outbox.drain():
            topic = self.topics.hops if where == "hops" else self.topics.to_score
            await out.send(topic, value=value, partition=partition, record="hops", source=_OUTBOX)

    async def write_durably(self, table: Any, items: Iterable[tuple[Any, Any]]) -> None:
        """Set table keys and wait until the broker has their changelog records (see `write_through`)."""
        await write_through(self.app, table, items)
