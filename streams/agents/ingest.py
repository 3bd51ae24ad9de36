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

    def __init__(self, ctx: StageContext, ordering: Ordering) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.ordering = ordering
        self.bounds = TimeBounds(max_future=timedelta(seconds=s.max_future_s),
                                 not_before=datetime.fromisoformat(s.not_before.replace("Z", "+00:00")))
        self.last_input_monotonic: float | None = None

    async def run(self, stream: Any) -> None:
        """The agent: a batch's hops and dead letters are delivered before Faust acknowledges its inputs."""
        ctx, m = self.ctx, self.ctx.metrics
        logs_topic = ctx.names.logs_raw
        outbox = ctx.outbox()
        aligner = self.ordering.aligner
        async for batch in stream.take_events(BATCH, within=0.05):
            self.last_input_monotonic = time.monotonic()
            out = ctx.outgoing()
            for event in batch:
                msg = event.message
                kind = _LOGS if msg.topic == logs_topic else _FLOWS
                m.events_in.labels(kind).inc()
                got = ingest(event.value, input_kind=kind, topic=msg.topic, partition=msg.partition,
                             offset=msg.offset, now=ctx.clock(), bounds=self.bounds)
                if isinstance(got, DeadLetter):
                    await out.dead_letter(msg.topic.encode(), got)
                elif outbox.add(got.hop, msg.partition):
                    aligner.observe(msg.tp, got.hop.message["ts"])
                else:
                    await ctx.dead_letter_hop(out, msg, got.hop.message)
            await ctx.send_outbox(out, outbox)
            await out.flush()
            self.ordering.align_inputs()
