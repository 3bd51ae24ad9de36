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
from ..internal import Outbox
from ..metrics import Metrics
from ..settings import Settings
from ..topics import TopicNames
from ..wire import DeadLetter, dead_letter

__all__ = ["StageContext", "Tables", "Topics"]

log = logging.getLogger("streamguard.worker")


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


@dataclass(frozen=True, slots=True)
class Tables:
    """The changelog-backed Faust tables of one worker."""

    entities: Any  # entity key -> packed `EntityState`
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

    def now_ms(self) -> int:
        """The clock's now, in ms since the epoch."""
        return int(self.clock().timestamp() * 1000)

    async def send_dead_letter(self, key: bytes, record: DeadLetter, *, input_event: bool = True) -> Any:
        """Send a dead letter and count it by reason, and as an input's outcome if `input_event`; returns the future.

        Records of our own output topics that are not ours (`unreadable_output`) are no input
        events: they are counted by reason only.
        """
        fut = await self.topics.deadletter.send(key=key, value=record.model_dump_json().encode())
        self.metrics.deadletters.labels(record.reason).inc()
        if input_event:
            self.metrics.events.labels("deadlettered").inc()
        return fut

    async def dead_letter_internal(self, message: Any, value: bytes | None, exc: Exception) -> Any:
        """Dead-letter a message a stage could not process (a bug, not bad input); returns the send future."""
        log.exception("stage failed on %s[%s]@%s", message.topic, message.partition, message.offset)
        dl = dead_letter("internal", f"{type(exc).__name__}: {exc}", topic=message.topic, partition=message.partition,
                         offset=message.offset, raw=value or b"", received_at_ms=self.now_ms())
        return await self.send_dead_letter(message.topic.encode(), dl)

    async def send_outbox(self, outbox: Outbox) -> None:
        """Send a stage's packed hops; the batch is acknowledged only after this returns."""
        for where, partition, value in outbox.drain():
            topic = self.topics.hops if where == "hops" else self.topics.to_score
            await topic.send(value=value, partition=partition)

    async def write_durably(self, table: Any, items: Iterable[tuple[Any, Any]]) -> None:
        """Set table keys and wait until the broker has their changelog records (see `write_through`)."""
        await write_through(self.app, table, items)
