"""The raw input (logs.raw, flows.raw) read in batches by the worker's own consumer, outside Faust's stream path.

A Faust stream costs about 250 µs per message before a stage sees it (a `Message`, an
`Event`, a queue put and get and per-message acknowledgement bookkeeping); raw topics carry
one event per message, so that path alone capped a worker at about 4,000 events/s
(docs/design/core-v2.md, "The frame's ceiling"). Here an aiokafka consumer hands the ingest
stage up to a batch of records at a time, and the stage commits a partition's offsets only
once the hops it made of them are on the broker: at least once, as before (a hop applied
twice is recognised by its source offset and not counted again).

The group is `<app id>-ingest` (`ingest_group`): Faust's own group uses its own partition
assignor, which a plain consumer cannot join. A worker of an earlier version committed raw
offsets in the `<app id>` group; a partition with no offset in the new group starts where
the old group stopped (`legacy_offsets`), so an upgrade neither re-reads nor skips input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from ..kafka import aiokafka_security, client_conf
from ..settings import Settings

__all__ = ["RawReader", "ingest_group", "legacy_offsets"]

log = logging.getLogger("streamguard.worker")

FETCH_BYTES = 128 * 1024  # per partition and fetch: small fetches keep partitions in step (event-time skew)


def ingest_group(app_id: str) -> str:
    """The consumer group that commits the raw topics' offsets of the workers of `app_id`."""
    return f"{app_id}-ingest"


def legacy_offsets(settings: Settings, group: str, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Committed offsets of `group` for the given (topic, partition)s; those with none are left out (blocking)."""
    from confluent_kafka import Consumer, TopicPartition

    wanted = [TopicPartition(t, p) for t, p in tps]
    if not wanted:
        return {}
    # Never subscribes, so it never joins (or disturbs) the group: it only reads its offsets.
    c = Consumer({**client_conf(settings.kafka_bootstrap, settings), "group.id": group, "enable.auto.commit": False})
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(wanted, timeout=30) if tp.offset >= 0}
    finally:
        c.close()


class _Listener(ConsumerRebalanceListener):
    """Rebalance callbacks: a batch in progress ends (and commits) before partitions go."""

    def __init__(self, reader: RawReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: Any) -> None:
        r = self.reader
        async with r.lock:  # waits for the batch being ingested, if any, to be delivered and committed
            r.generation += 1
            r.read.clear()
            r.paused.clear()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        r = self.reader
        r.generation += 1
        r.fresh.update(assigned)


class RawReader:
    """One worker's consumer of the raw topics: batches of records, positions, ends, pauses and commits."""

    def __init__(self, settings: Settings, topics: list[str], *, group: str | None = None,
                 legacy_group: str | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.group = group or ingest_group(settings.app_id)
        self.legacy_group = legacy_group if legacy_group is not None else settings.app_id
        self.lock = asyncio.Lock()  # held while a batch is ingested; a revocation waits for it
        self.generation = 0  # moves at every revocation and assignment: a batch fetched before is dropped
        self.read: dict[Any, int] = {}  # partition -> last offset handed to ingest (-1 + where reading starts)
        self.paused: set[Any] = set()
        self.fresh: set[Any] = set()  # assigned, reading position not looked up yet
        self.consumer: Any = None

    async def start(self) -> None:
        """Join the group and subscribe (the topics must exist: the worker creates them before it starts)."""
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=self.group, client_id=f"{s.app_id}-ingest",
            enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=FETCH_BYTES,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.session_timeout_s * 100), **aiokafka_security(s))
        try:
            self.consumer.subscribe(self.topics, listener=_Listener(self))
            await self.consumer.start()
        except BaseException:
            await self.consumer.stop()
            raise

    async def stop(self) -> None:
        """Leave the group (offsets are committed per batch, so nothing is left to commit)."""
        if self.consumer is not None:
            await self.consumer.stop()

    def assignment(self) -> set[Any]:
        """The raw partitions this worker reads now."""
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def fetch(self, max_records: int, timeout_ms: int) -> tuple[int, dict[Any, list[Any]]]:
        """Up to `max_records` records, with the group generation they were returned in."""
        await self._positions()
        got = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        # The generation as getmany returns, not as it was called: a group joined meanwhile hands
        # out records of the new assignment, and dropping those would skip them (the position
        # has moved past them). Records are dropped only when a revocation comes after this
        # point, and a revocation resets the positions of whatever is assigned next.
        return self.generation, got

    async def _positions(self) -> None:
        # Where reading starts on newly assigned partitions: the input aligner counts a
        # partition as behind until it knows (`Ordering.align_inputs`).
        tps = [tp for tp in self.fresh if tp in self.consumer.assignment()]
        self.fresh.clear()
        try:
            await self._adopt_legacy(tps)
            for tp in tps:
                self.read[tp] = await self.consumer.position(tp) - 1
        except Exception as exc:  # noqa: BLE001 - revoked meanwhile, or the broker is away: ask again later
            log.warning("ingest: no reading position for %d raw partition(s) yet (%r)", len(tps), exc)
            self.fresh.update(tp for tp in tps if tp not in self.read)

    async def _adopt_legacy(self, tps: list[Any]) -> None:
        """Start partitions this group never committed where the earlier group stopped (one lookup for all)."""
        if not self.legacy_group or not tps:
            return
        new = [tp for tp in tps if await self.consumer.committed(tp) is None]
        old = await asyncio.to_thread(legacy_offsets, self.settings, self.legacy_group,
                                      [(tp.topic, tp.partition) for tp in new])
        for tp in new:
            offset = old.get((tp.topic, tp.partition))
            if offset is not None:
                log.info("ingest: %s[%d] starts at offset %d, where group %s stopped", tp.topic, tp.partition,
                         offset, self.legacy_group)
                self.consumer.seek(tp, offset)

    def current(self, generation: int, tp: Any) -> bool:
        """Whether a record of `tp` fetched in `generation` is still this worker's to ingest."""
        return generation == self.generation and tp in self.consumer.assignment()

    def handed(self, tp: Any, offset: int) -> None:
        """The record of `tp` at `offset` went to ingest."""
        self.read[tp] = offset

    async def commit(self, offsets: dict[Any, int]) -> None:
        """Commit next-offsets to read; a failure is logged (the next batch's commit covers it)."""
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - at least once: the records are read again by their next owner
            log.warning("ingest: commit of %d raw partition(s) failed (%r); they may be read again", len(offsets), exc)

    def position(self, tp: Any) -> tuple[int | None, int | None]:
        """(last offset handed to ingest, partition end) of `tp`; None where not known yet."""
        return self.read.get(tp), self.consumer.highwater(tp)

    def lag(self) -> int:
        """Messages between what ingest was handed and the ends of this worker's raw partitions."""
        behind = 0
        for tp in self.assignment():
            read, end = self.position(tp)
            if read is not None and end is not None:
                behind += max(end - read - 1, 0)
        return behind

    def pause(self, tps: Iterable[Any]) -> None:
        """Stop fetching these partitions (records already fetched are not returned either)."""
        tps = [tp for tp in tps if tp in self.consumer.assignment()]
        if tps:
            self.consumer.pause(*tps)

    def resume(self, tps: Iterable[Any]) -> None:
        """Fetch these partitions again."""
        tps = [tp for tp in tps if tp in self.consumer.assignment()]
        if tps:
            self.consumer.resume(*tps)
