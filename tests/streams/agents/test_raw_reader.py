"""The raw input's own consumer against a real broker: batches, commits, the upgrade from Faust's group, rebalances."""

from __future__ import annotations

import asyncio

import pytest

from streams.agents.raw_reader import RawReader, ingest_group
from streams.kafka import ensure_topics
from streams.settings import Settings
from tests.streams.conftest import group_lag, produce, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _setup(bootstrap: str, n: int, partitions: int = 1) -> tuple[Settings, str]:
    prefix = unique_prefix()
    s = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, app_id=prefix.rstrip("."), session_timeout_s=6)
    topic = f"{prefix}logs.raw"
    ensure_topics(bootstrap, [topic], partitions)
    produce(bootstrap, topic, [(None, f"line {i}".encode()) for i in range(n)])
    return s, topic


async def _read_all(reader: RawReader, want: int, commit: bool = True) -> list[int]:
    got: list[int] = []
    for _ in range(300):  # fetches of at most 0.1 s: a bound on the loop, not on the broker's speed
        generation, fetched = await reader.fetch(100, timeout_ms=100)
        offsets = {}
        for tp, records in fetched.items():
            assert reader.current(generation, tp)
            got += [r.offset for r in records]
            reader.handed(tp, records[-1].offset)
            offsets[tp] = records[-1].offset + 1
        if commit:
            await reader.commit(offsets)
        if len(got) >= want:
            break
    return got


def _ends(bootstrap: str, topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions)]
    finally:
        c.close()


def _commit_legacy(bootstrap: str, group: str, topic: str, offset: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


async def test_reads_in_batches_and_commits_in_its_own_group(kafka_bootstrap: str) -> None:
    s, topic = _setup(kafka_bootstrap, 250)
    reader = RawReader(s, [topic])
    await reader.start()
    try:
        got = await _read_all(reader, 250)
        (tp,) = reader.assignment()
        assert reader.position(tp) == (249, 250)
        assert reader.lag() == 0
    finally:
        await reader.stop()
    assert sorted(got) == list(range(250))
    assert group_lag(kafka_bootstrap, ingest_group(s.app_id), [topic]) == {f"{topic}[0]": 0}
    # Faust's group is not touched.
    assert group_lag(kafka_bootstrap, s.app_id, [topic]) == {f"{topic}[0]": 250}


async def test_an_upgrade_starts_where_fausts_group_stopped(kafka_bootstrap: str) -> None:
    s, topic = _setup(kafka_bootstrap, 40)
    _commit_legacy(kafka_bootstrap, s.app_id, topic, 30)  # what a worker of the earlier version committed
    reader = RawReader(s, [topic])
    await reader.start()
    try:
        got = await _read_all(reader, 10)
    finally:
        await reader.stop()
    assert got == list(range(30, 40))


async def test_its_own_offsets_win_over_the_earlier_group(kafka_bootstrap: str) -> None:
    s, topic = _setup(kafka_bootstrap, 40)
    _commit_legacy(kafka_bootstrap, s.app_id, topic, 30)
    first = RawReader(s, [topic], legacy_group="")  # no adoption: reads from the start, commits up to 40
    await first.start()
    try:
        assert len(await _read_all(first, 40)) == 40
    finally:
        await first.stop()
    produce(kafka_bootstrap, topic, [(None, b"one more")])
    second = RawReader(s, [topic])
    await second.start()
    try:
        assert await _read_all(second, 1) == [40]
    finally:
        await second.stop()


async def test_a_batch_fetched_before_a_rebalance_is_not_its_to_ingest(kafka_bootstrap: str) -> None:
    s, topic = _setup(kafka_bootstrap, 20, partitions=2)
    a = RawReader(s, [topic])
    await a.start()
    b = RawReader(s, [topic])
    try:
        while not a.assignment():
            await a.fetch(1, timeout_ms=100)
        generation = a.generation
        before = set(a.assignment())
        await b.start()  # joins: a's partitions are revoked and shared out again
        for _ in range(300):
            await asyncio.gather(a.fetch(1, timeout_ms=100), b.fetch(1, timeout_ms=100))
            if a.assignment() and b.assignment():
                break
        assert len(a.assignment()) == len(b.assignment()) == 1
        assert not any(a.current(generation, tp) for tp in before)
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def _ingest_like_the_stage(reader: RawReader, seen: list[tuple[int, int]]) -> None:
    generation, fetched = await reader.fetch(3, timeout_ms=100)
    async with reader.lock:
        offsets = {}
        for tp, records in fetched.items():
            if records and reader.current(generation, tp):
                seen += [(tp.partition, r.offset) for r in records]
                offsets[tp] = records[-1].offset + 1
        await reader.commit(offsets)


async def test_a_second_reader_joining_midway_skips_nothing(kafka_bootstrap: str) -> None:
    s, topic = _setup(kafka_bootstrap, 60, partitions=2)
    every = {(p, o) for p, end in enumerate(_ends(kafka_bootstrap, topic, 2)) for o in range(end)}
    assert len(every) == 60
    a, b = RawReader(s, [topic]), RawReader(s, [topic])
    seen: list[tuple[int, int]] = []
    await a.start()
    try:
        while len(seen) < 6:  # a reads some of the backlog alone, small batches
            await _ingest_like_the_stage(a, seen)
        await b.start()
        for _ in range(600):
            await asyncio.gather(_ingest_like_the_stage(a, seen), _ingest_like_the_stage(b, seen))
            if set(seen) >= every:
                break
    finally:
        await asyncio.gather(a.stop(), b.stop())
    # Every record read at least once (a batch read twice across the rebalance is allowed).
    assert set(seen) == every
