"""Sink: copy threats, actions, incidents and the audit trail into MongoDB, a batch acknowledged once written."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import StreamsError
from ..mongo import (
    ACTIONS,
    AUDIT,
    INCIDENTS,
    THREATS,
    MongoSink,
    action_document,
    audit_document,
    connect_mongo,
    incident_document,
    threat_document,
)
from ..wire import dead_letter

if TYPE_CHECKING:
    from .context import StageContext

__all__ = ["SinkStage"]

log = logging.getLogger("streamguard.worker")

BATCH = 500
WRITE_TIMEOUT_MS = 60_000  # one MongoDB operation at most; then the batch is retried


class SinkStage:
    """Writes output records to MongoDB; MongoDB away holds the batch (nothing is committed) and retries."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self._sink: MongoSink | None = None
        # The four sink agents write from worker threads: one write at a time per worker. FerretDB's
        # SQLite backend has one writer per database; eight concurrent writers (two workers) made each
        # 500-document batch wait past a minute, over and over (seen in the rollout test).
        self._writing = threading.Lock()

    async def run_threats(self, stream: Any) -> None:
        """The agent on `threats.enriched`."""
        await self._run(stream, THREATS, threat_document)

    async def run_actions(self, stream: Any) -> None:
        """The agent on `actions.healing`."""
        await self._run(stream, ACTIONS, action_document)

    async def run_audit(self, stream: Any) -> None:
        """The agent on `ops.audit`."""
        await self._run(stream, AUDIT, audit_document)

    async def run_incidents(self, stream: Any) -> None:
        """The agent on `threats.incidents`."""
        await self._run(stream, INCIDENTS, incident_document)

    async def _run(self, stream: Any, collection: str, to_doc: Callable[[bytes], dict]) -> None:
        ctx, m = self.ctx, self.ctx.metrics
        async for batch in stream.take_events(BATCH, within=1.0):
            out = ctx.outgoing()
            docs = []
            for event in batch:
                try:
                    docs.append(to_doc(event.value or b""))
                except ValueError as exc:  # someone else's record on our output topic
                    msg = event.message
                    dl = dead_letter("unreadable_output", str(exc), topic=msg.topic, partition=msg.partition,
                                     offset=msg.offset, raw=event.value or b"", received_at_ms=ctx.now_ms())
                    await out.dead_letter(msg.topic.encode(), dl, input_event=False)
            await out.flush()
            delay = 1.0
            while docs:
                try:
                    written = await asyncio.to_thread(self._write, collection, docs)
                    m.sink_written.labels(collection).inc(written)
                    break
                except StreamsError as exc:  # MongoDB away: hold the batch (nothing is committed) and retry
                    m.sink_errors.labels(collection).inc()
                    log.warning("%s; retrying in %.0f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)

    def _write(self, collection: str, docs: list[dict]) -> int:
        """Open the sink on first use (in a worker thread: connecting blocks), then write."""
        with self._writing:
            if self._sink is None:
                s = self.ctx.settings
                client = connect_mongo(s.mongo_uri.get_secret_value() if s.mongo_uri else "",
                                       socket_timeout_ms=WRITE_TIMEOUT_MS)
                self._sink = MongoSink(client[s.mongo_database], ttl_days=s.mongo_ttl_days)
            return self._sink.write(collection, docs)

    async def purge_tick(self) -> None:
        """Delete expired documents where the server has no TTL indexes (FerretDB 1.x)."""
        if self._sink is None or not self.ctx.settings.mongo_ttl_days:
            return
        try:
            gone = await asyncio.to_thread(self._sink.purge, self.ctx.clock())
        except StreamsError as exc:
            log.warning("%s", exc)
            return
        if gone:
            log.info("purged %d expired threat/action documents", gone)
