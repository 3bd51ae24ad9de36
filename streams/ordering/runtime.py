"""The worker's side of event-time ordering: pause raw partitions, publish and read floors.

`align` and `hold` are pure; this module feeds them what the consumer knows (positions,
ends, assignment), pauses and resumes raw partitions, tells the other workers this worker's
floor on `<app>-watermarks` and reads theirs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..faust.internals import committed_offset, read_offset
from ..internal import floor_report, read_floor_report
from ..reader import GrouplessReader, keep_running
from .align import EventTimeAligner, WatermarkBoard
from .hold import HopHold

if TYPE_CHECKING:
    from ..agents.context import StageContext
    from ..agents.raw_reader import RawReader

__all__ = ["Ordering", "lowest"]

log = logging.getLogger("streamguard.worker")

ALIGN_EVERY_S = 0.5  # how often input alignment runs without input, and floors are reported
HOLD_SLACK_MS = 1_000  # held hops this far above the floor go (see `HopHold`)
MAX_HELD_HOPS = 10_000  # beyond this, the lowest held hops go regardless (memory)
REPORT_MIN_S = 0.02  # floors change with every release round; tell the others at most this often


def lowest(*floors: int | None) -> int | None:
    """The lowest of the event-time floors that exist (None: none does)."""
    known = [f for f in floors if f is not None]
    return min(known) if known else None


class Ordering:
    """One worker's input alignment, hop hold and floor exchange."""

    def __init__(self, ctx: StageContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.aligner = EventTimeAligner(int(s.max_input_skew_s * 1000))
        self.board = WatermarkBoard(ctx.worker_id)
        self.hold = HopHold(slack_ms=HOLD_SLACK_MS, max_hold_s=s.max_hold_s, max_held=MAX_HELD_HOPS)
        self.enabled = s.max_input_skew_s > 0
        self.hold_on = s.max_hold_s > 0 and self.enabled
        self.floor_moved = asyncio.Event()  # another worker reported its floor
        # Event-time watermark per hop partition: idle expiry must use the clock of the
        # partition an entity lives on, or a partition that lags during catch-up would have
        # its entities expired by another partition's later events.
        self.partition_watermark: dict[int, int] = {}
        self.max_event_ms = 0
        self.reader: RawReader | None = None  # the raw input's consumer (set by the ingest stage's owner)
        self._floor: int | None = None  # this worker's floor, told to the others
        self._reported: int | None = None  # the floor last told
        self._reported_at = 0.0

    def observe_hop(self, partition: int, ts_ms: int) -> None:
        """A hop of `partition` with event time `ts_ms` was read (held or not)."""
        # The partition's time is what it has read, held or not: the input aligner and the
        # floor compare partitions by how far their reading got.
        if ts_ms > self.partition_watermark.get(partition, 0):
            self.partition_watermark[partition] = ts_ms
        if ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms

    def release_floor(self) -> int | None:
        """Event time below which nothing more can reach this worker's entities (None: nothing is behind).

        This worker's backlogged partitions and other workers' floors; this worker's own held
        hops are released lowest first (`HopHold.release`).
        """
        return lowest(self._floor, self.board.floor(time.monotonic()))

    def align_inputs(self) -> None:
        """Pause raw partitions too far ahead of the event-time floor; resume those no longer ahead."""
        ctx, reader = self.ctx, self.reader
        app = ctx.app
        aligner = self.aligner
        if reader is None or reader.consumer is None:
            return
        raw = reader.assignment()
        paused = reader.paused
        if app.rebalancing or app.in_recovery or not app.flow_control.is_active():
            # The hop stage is not running (Faust pauses its partitions): hold the raw input
            # back too, as when Faust read it, and align again from scratch afterwards.
            reader.pause(raw)
            paused.clear()
            paused.update(raw)
            self._floor = None
            ctx.metrics.inputs_paused.labels("ingest").set(len(raw))
            return
        consumer = app.consumer
        hops = ctx.topics.hops.get_topic_name()
        hop_tps = {tp for tp in consumer.assignment() if tp.topic == hops}
        aligner.forget(raw | hop_tps)
        backlogged = set()
        for tp in hop_tps:
            if tp.partition in self.partition_watermark:
                aligner.observe(tp, self.partition_watermark[tp.partition])
            try:
                end, read = consumer.highwater(tp), read_offset(consumer, tp)
                if read is None:  # nothing delivered yet: reading starts at the committed offset
                    read = (committed_offset(consumer, tp) or 0) - 1
            except Exception:  # noqa: BLE001 - revoked meanwhile
                continue
            # Not fetched yet (no end known) counts as backlogged: such a partition holds the
            # others back until it has a time (see `EventTimeAligner.floor`).
            if end is None or read + 1 < end:
                backlogged.add(tp)
        for tp in raw:
            read, end = reader.position(tp)
            if read is None or end is None or read + 1 < end:
                backlogged.add(tp)
        now = time.monotonic()
        self._floor = aligner.floor(backlogged, now)
        pause = aligner.ahead(backlogged, now, pausable=raw,
                              elsewhere=lowest(self.board.floor(now), self.hold.floor()))
        if paused - pause:
            reader.resume(paused - pause)
        if pause - paused:
            reader.pause(pause - paused)
        paused.clear()
        paused.update(pause)
        ctx.metrics.inputs_paused.labels("ingest").set(len(pause))

    async def align_tick(self) -> None:
        """Align again (ingest may be wholly paused, waiting on others) and tell the others our floor."""
        self.align_inputs()
        await self.report_floor()

    async def report_floor(self, min_interval_s: float = 0.0) -> None:
        """Tell the other workers this worker's floor: its slowest backlogged partition, or its lowest held hop."""
        now = time.monotonic()
        if now - self._reported_at < min_interval_s:
            return
        floor = lowest(self._floor, self.hold.floor())  # nothing is held with holding off
        if floor is None and self._reported is None:
            return  # no backlog, and the others know: a floor unrepeated for 5 s is dropped anyway
        if min_interval_s and floor == self._reported:
            return
        self._reported_at = now
        me = self.ctx.worker_id
        await self.ctx.topics.watermarks.send(key=me.encode(), value=floor_report(me, floor))
        self._reported = floor

    async def watermarks_task(self) -> None:
        """Read every worker's floor into the board, for as long as the worker runs."""
        await self.ctx.topics.watermarks.maybe_declare()
        await keep_running("watermark consumer", self._read_floors)

    async def _read_floors(self) -> None:
        topic = self.ctx.topics.watermarks.get_topic_name()
        async with GrouplessReader(self.ctx.settings.kafka_bootstrap, [topic], start="end") as reader:
            async for records in reader.batches(timeout_ms=1000):  # only fresh floors matter
                now = time.monotonic()
                for record in records:
                    try:
                        report = read_floor_report(record.value)
                    except Exception:  # noqa: BLE001 - a bad report costs itself only
                        log.warning("ignored a malformed watermark report at offset %d", record.offset)
                        continue
                    self.board.receive(report.worker, report.floor_ms, now)
                    if report.worker != self.ctx.worker_id:
                        self.floor_moved.set()
