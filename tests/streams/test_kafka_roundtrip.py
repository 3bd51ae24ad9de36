"""The broker plumbing: 10,000 keyed messages through a 4-partition topic with confluent-kafka."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from streams.kafka import ensure_topics, ping_kafka

pytestmark = pytest.mark.integration

N = 10_000


def test_ten_thousand_messages_round_trip(make_topic, make_producer, make_consumer) -> None:
    topic = make_topic("roundtrip", partitions=4)
    producer = make_producer()
    failures: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(N):
        producer.produce(topic, key=f"entity-{i % 97}".encode(), value=f"{i}".encode(), on_delivery=on_delivery)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    consumer = make_consumer(topic)
    seen: list[int] = []
    partitions_by_key: dict[bytes, set[int]] = defaultdict(set)
    order_by_key: dict[bytes, list[int]] = defaultdict(list)
    deadline = time.monotonic() + 180
    while len(seen) < N and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            assert msg.error() is None, msg.error()
            value = int(msg.value())
            seen.append(value)
            partitions_by_key[msg.key()].add(msg.partition())
            order_by_key[msg.key()].append(value)

    assert sorted(seen) == list(range(N)), f"got {len(seen)} of {N}, {len(set(seen))} distinct"
    # Keyed messages stay on one partition and in produce order; all four partitions are used.
    assert all(len(p) == 1 for p in partitions_by_key.values())
    assert all(vals == sorted(vals) for vals in order_by_key.values())
    assert set().union(*partitions_by_key.values()) == {0, 1, 2, 3}


def test_ensure_topics_is_idempotent(kafka_bootstrap: str, kafka_admin) -> None:
    import uuid

    names = [f"ensure-{uuid.uuid4().hex[:8]}-{n}" for n in ("a", "b")]
    try:
        assert ping_kafka(kafka_bootstrap) >= 1
        assert sorted(ensure_topics(kafka_bootstrap, names, partitions=3)) == sorted(names)
        assert ensure_topics(kafka_bootstrap, names, partitions=3) == []
        md = kafka_admin.list_topics(timeout=10)
        assert all(len(md.topics[n].partitions) == 3 for n in names)
    finally:
        for fut in kafka_admin.delete_topics(names, operation_timeout=30).values():
            fut.result(30)
