"""Ingest: raw log and flow messages in, each event's first entity hop (or its dead letter) out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from features.entities import entity_keys
from features.errors import ParseError
from features.events import Event
from features.parsing import TimeBounds, parse_flow, parse_log
from features.store import kernel_inputs

from ..internal import Hop
from ..wire import DeadLetter, dead_letter, event_id_for

if TYPE_CHECKING:
    from ..ordering.runtime import Ordering
    from .context import StageContext
    from .raw_reader import RawReader

__all__ = ["IngestStage", "Ingested", "ingest"]

_LOGS, _FLOWS = "logs", "flows"
BATCH = 1000  # raw messages per ingest batch


@dataclass(slots=True)
class Ingested:
    """A parsed input: its event id and the event's first hop."""

    event_id: str
    hop: Hop


def _first_hop(event: Event, event_id: str, ingest_ms: int, origin: str, offset: int) -> Hop:
    route = [[role, key] for role, key in entity_keys(event).items()]
    # The event travels as JSON text only the scoring stage reads; the hops read `ts` and `k`.
    msg = {"id": event_id, "ts": event.ts_ms, "k": kernel_inputs(event), "ev": orjson.dumps(event.to_dict()).decode(),
           "in": ingest_ms, "src": [origin, offset], "route": route, "i": 0, "parts": {}}
    return Hop(route[0][1].encode() if route else None, msg)


def ingest(raw: bytes | None, *, input_kind: str, topic: str, partition: int, offset: int,
           now: datetime, bounds: TimeBounds) -> Ingested | DeadLetter:
    """Parse one raw input message: the first hop of its event, or its dead letter. Never raises."""
    received = int(now.timestamp() * 1000)
    if raw is None:
        return dead_letter("empty", "message has no value (tombstone)", topic=topic, partition=partition,
                           offset=offset, raw=b"", received_at_ms=received)
    parse = parse_log if input_kind == _LOGS else parse_flow
    try:
        event = parse(raw, now=now, bounds=bounds)
    except ParseError as exc:
        return dead_letter(exc.reason.value, str(exc), topic=topic, partition=partition, offset=offset, raw=raw,
                           received_at_ms=received)
    except Exception as exc:  # noqa: BLE001 - a parser bug must cost one event, never the worker
        return dead_letter("internal", f"{type(exc).__name__}: {exc}", topic=topic, partition=partition,
                           offset=offset, raw=raw, received_at_ms=received)
    event_id = event_id_for(f"{topic}:{partition}:{offset}")
    return Ingested(event_id, _first_hop(event, event_id, received, f"{topic}:{partition}", offset))


class IngestStage:
    """Parses batches of raw messages and sends each event's first hop, packed per partition."""

    def __init__(self, ctx: StageContext, ordering: Ordering, reader: RawReader) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.ordering = ordering
        self.reader = reader
        self.bounds = TimeBounds(max_future=timedelta(seconds=s.max_future_s),
                                 not_before=datetime.fromisoformat(s.not_before.replace("Z", "+00:00")))
        self.last_input_monotonic: float | None = None

    async def run(self) -> None:
        """The task: read raw batches until the worker stops; a batch is delivered before its offsets are committed."""
        reader = self.reader
        await reader.start()
        try:
            while True:
                await self.step()
        finally:
            await reader.stop()

    async def step(self) -> None:
        """Ingest one fetched batch (possibly empty), then align the raw partitions."""
        reader = self.reader
        generation, fetched = await reader.fetch(BATCH, timeout_ms=100)
        if fetched:
            async with reader.lock:
                await self._ingest(generation, fetched)
        self.ordering.align_inputs()
        self.ctx.metrics.consumer_lag.labels("ingest").set(reader.lag())

    async def _ingest(self, generation: int, fetched: dict[Any, list[Any]]) -> None:
        ctx, m, reader = self.ctx, self.ctx.metrics, self.reader
        logs_topic = ctx.names.logs_raw
        outbox = ctx.outbox()
        aligner = self.ordering.aligner
        out = ctx.outgoing()
        commit: dict[Any, int] = {}
        now = ctx.clock()
        for tp, records in fetched.items():
            # Fetched before a rebalance: the partition's next owner reads these from the committed offset.
            if not records or not reader.current(generation, tp):
                continue
            kind = _LOGS if tp.topic == logs_topic else _FLOWS
            m.events_in.labels(kind).inc(len(records))
            for rec in records:
                got = ingest(rec.value, input_kind=kind, topic=tp.topic, partition=tp.partition, offset=rec.offset,
                             now=now, bounds=self.bounds)
                if isinstance(got, DeadLetter):
                    await out.dead_letter(tp.topic.encode(), got)
                elif outbox.add(got.hop, tp.partition, tp):
                    aligner.observe(tp, got.hop.message["ts"])
                else:
                    await ctx.dead_letter_hop(out, _Where(tp.topic, tp.partition, rec.offset), got.hop.message)
            reader.handed(tp, records[-1].offset)
            commit[tp] = records[-1].offset + 1
        if commit:
            self.last_input_monotonic = time.monotonic()
        await ctx.send_outbox(out, outbox)
        await out.flush()
        await reader.commit(commit)


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a raw record came from, as dead-letter helpers read it off a message."""

    topic: str
    partition: int
    offset: int
