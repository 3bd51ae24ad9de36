"""Group-less topic readers: every worker reads every partition (control commands, floors).

A consumer group would split the partitions between workers; these topics are for all of
them. No offsets are committed: a reader starts at the beginning (and knows which records
were history when it started) or at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal

from .faust.internals import refresh_metadata
from .kafka import aiokafka_security

__all__ = ["GrouplessReader", "keep_running"]

log = logging.getLogger("streamguard.worker")


class GrouplessReader:
    """Every partition of `topics`, from the beginning or the end, with no consumer group."""

    def __init__(self, bootstrap: str, topics: list[str], *, start: Literal["beginning", "end"],
                 offsets: Mapping[tuple[str, int], int] | None = None, wait_for_partitions_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.start = start
        self.offsets = dict(offsets or {})  # (topic, partition) -> where to start instead
        self.wait_for_partitions_s = wait_for_partitions_s
        self.ends: dict[Any, int] = {}  # partition -> end offset when reading started
        self._consumer: Any = None

    async def __aenter__(self) -> GrouplessReader:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, **aiokafka_security(),
                                              enable_auto_commit=False, auto_offset_reset="earliest")
        await c.start()
        try:
            tps = []
            for topic in self.topics:
                parts = c.partitions_for_topic(topic) or set()
                # A topic created a moment ago (by this worker) may not be in the metadata yet.
                for _ in range(int(self.wait_for_partitions_s / 0.2)):
                    if parts:
                        break
                    await asyncio.sleep(0.2)
                    await refresh_metadata(c)
                    parts = c.partitions_for_topic(topic) or set()
                tps += [TopicPartition(topic, n) for n in sorted(parts)]
            c.assign(tps)
            if self.start == "beginning":
                await c.seek_to_beginning(*tps)
                self.ends = await c.end_offsets(tps) if tps else {}
            else:
                await c.seek_to_end(*tps)
            for tp in tps:
                if (tp.topic, tp.partition) in self.offsets:
                    c.seek(tp, self.offsets[(tp.topic, tp.partition)])
        except BaseException:
            await c.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def batches(self, timeout_ms: int = 500) -> AsyncIterator[list[Any]]:
        """Records as they come, a fetch at a time (an empty list when nothing came within `timeout_ms`)."""
        while True:
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms)
            yield [rec for records in fetched.values() for rec in records]

    async def positions(self, topic: str) -> dict[int, int]:
        """Partition -> the offset the next record of `topic` will come from."""
        c = self._consumer
        return {tp.partition: await c.position(tp) for tp in c.assignment() if tp.topic == topic}

    def is_history(self, record: Any) -> bool:
        """True for a record that was already on the topic when reading started (from the beginning)."""
        from aiokafka import TopicPartition

        return record.offset < self.ends.get(TopicPartition(record.topic, record.partition), 0)


async def keep_running(what: str, run: Callable[[], Awaitable[None]], retry_s: float = 2.0) -> None:
    """Run `run()` forever: after a failure (a broker hiccup), log it and start it again in `retry_s`."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting in %.0f s", what, retry_s)
            await asyncio.sleep(retry_s)
