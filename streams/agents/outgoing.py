"""What a stage sends for one batch, delivered in full before the batch's inputs are acknowledged.

Faust acknowledges a `take_events` batch when the agent moves on, and also when the agent
body raises: a send that fails, or a delivery never awaited, would then leave inputs
committed with their outputs lost. So a stage queues every record of a batch here and
`flush`es before it moves on: records are checked against the record size limit before they
are sent (an oversized one becomes a `too_large` dead letter, the stage goes on), and sends
that fail are retried until the broker has them (counted; the stage waits, it never skips).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..metrics import Metrics
from ..wire import DeadLetter, dead_letter

__all__ = ["Origin", "Outgoing"]

log = logging.getLogger("streamguard.worker")

_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record comes from when no input message carries it (the dead letter of an oversized one names it)."""

    topic: str
    partition: int = -1
    offset: int = -1


@dataclass(slots=True)
class _Record:
    topic: Any
    key: bytes | None
    value: bytes
    partition: int | None
    future: Any = None  # the delivery future, or the exception the send raised


def _delivered(r: _Record) -> bool:
    f = r.future
    return isinstance(f, asyncio.Future) and f.done() and not f.cancelled() and f.exception() is None


class Outgoing:
    """The records of one batch of one stage."""

    def __init__(self, *, deadletter_topic: Any, metrics: Metrics, max_record_bytes: int,
                 now_ms: Callable[[], int]) -> None:
        self.deadletter_topic = deadletter_topic
        self.metrics = metrics
        self.max_record_bytes = max_record_bytes
        self.now_ms = now_ms
        self._records: list[_Record] = []

    def __len__(self) -> int:
        return len(self._records)

    def fits(self, key: bytes | None, value: bytes) -> bool:
        """Whether a record of this key and value is within the record size limit."""
        return len(value) + len(key or b"") <= self.max_record_bytes

    async def send(self, topic: Any, *, value: bytes, record: str, source: Any, key: bytes | None = None,
                   partition: int | None = None) -> bool:
        """Queue one record; False when it was too large and went to the dead letters instead.

        `record` names what it is (a fixed set, for the metric); `source` is the Faust message
        it came from, which the dead letter names.
        """
        if not self.fits(key, value):
            limit = self.max_record_bytes
            size = len(value) + len(key or b"")
            self.metrics.records_too_large.labels(record).inc()
            log.error("%s record of %d bytes from %s[%s]@%s exceeds the %d-byte record limit; dead-lettered",
                      record, size, source.topic, source.partition, source.offset, limit)
            await self.dead_letter(source.topic.encode(), dead_letter(
                "too_large", f"{record} record of {size} bytes exceeds the record limit of {limit} bytes",
                topic=source.topic, partition=source.partition, offset=source.offset, raw=value,
                received_at_ms=self.now_ms()), input_event=False)
            return False
        await self._queue(_Record(topic, key, value, partition))
        return True

    async def dead_letter(self, key: bytes, letter: DeadLetter, *, input_event: bool = True) -> None:
        """Queue a dead letter, counted by reason and, if `input_event`, as an input's outcome.

        Records of our own output topics that are not ours (`unreadable_output`) and outputs
        too large to send are no input's outcome: they are counted by reason only. The original
        is cut further if the letter would not fit the record limit.
        """
        m = self.metrics
        value = letter.model_dump_json().encode()
        if not self.fits(key, value):
            room = max(0, (self.max_record_bytes - len(key) - 4096) * 3 // 4)  # base64 grows by 4/3
            raw = base64.b64decode(letter.original_b64)[:room]
            value = letter.model_copy(update={"original_b64": base64.b64encode(raw).decode("ascii"),
                                              "truncated": True}).model_dump_json().encode()
        m.deadletters.labels(letter.reason).inc()
        if input_event:
            m.events.labels("deadlettered").inc()
        await self._queue(_Record(self.deadletter_topic, key, value, None))

    async def _queue(self, r: _Record) -> None:
        await self._start(r)
        self._records.append(r)

    @staticmethod
    async def _start(r: _Record) -> None:
        try:
            r.future = await r.topic.send(key=r.key, value=r.value, partition=r.partition)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried by `flush`; a send must never end the stage
            r.future = exc

    async def flush(self) -> None:
        """Return once the broker has every queued record; failed sends are retried, with a growing pause."""
        delay = _RETRY_FIRST_S
        pending = self._records
        self._records = []
        while pending:
            waiting = [r.future for r in pending if isinstance(r.future, asyncio.Future) and not r.future.done()]
            if waiting:
                await asyncio.wait(waiting)
            failed = [r for r in pending if not _delivered(r)]
            if not failed:
                return
            why = failed[0].future
            if isinstance(why, asyncio.Future):
                why = why.exception() if not why.cancelled() else "cancelled"
            self.metrics.send_retries.inc(len(failed))
            log.warning("%d record(s) not delivered (%r); sending them again in %.1f s", len(failed), why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)
            for r in failed:
                await self._start(r)
            pending = failed
