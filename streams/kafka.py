"""Thin helpers over confluent-kafka's admin client: reachability and topic creation."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from .errors import InfraUnavailable, StreamsError

__all__ = ["admin_client", "ensure_topics", "ping_kafka", "record_limit"]

# What a record costs in a batch besides its key and value (batch header, record header,
# varints); generous, so a record that passes our check is never refused by the broker.
RECORD_OVERHEAD = 1024


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client for these bootstrap servers (librdkafka logs silenced)."""
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def ping_kafka(bootstrap: str, timeout_s: float = 5.0) -> int:
    """Number of brokers answering a metadata request; raises `InfraUnavailable` if none."""
    try:
        md = admin_client(bootstrap).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise InfraUnavailable("Kafka", bootstrap, str(exc)) from exc
    if not md.brokers:
        raise InfraUnavailable("Kafka", bootstrap, "no brokers in metadata")
    return len(md.brokers)


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1, timeout_s: float = 30.0,
    config: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with `config`, e.g. compaction); returns the names created."""
    client = admin_client(bootstrap)
    wanted = list(dict.fromkeys(names))
    try:
        existing = set(client.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise InfraUnavailable("Kafka", bootstrap, str(exc)) from exc
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = client.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication, config=dict(config or {}))
         for n in missing],
        operation_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            # Another worker may have created it between list and create.
            if exc.args and getattr(exc.args[0], "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue
            raise StreamsError(f"could not create topic {name!r}: {exc}") from exc
    return created


def record_limit(bootstrap: str, topics: Iterable[str], producer_max: int, timeout_s: float = 30.0) -> int:
    """The largest key + value a record may have to be accepted everywhere we write.

    The broker's `message.max.bytes`, each existing topic's `max.message.bytes` (topics
    created later get the broker's) and the producer's request limit, less a batch's overhead.
    """
    client = admin_client(bootstrap)
    try:
        md = client.list_topics(timeout=timeout_s)
        resources = [ConfigResource(ConfigResource.Type.BROKER, str(b)) for b in md.brokers]
        resources += [ConfigResource(ConfigResource.Type.TOPIC, t) for t in dict.fromkeys(topics) if t in md.topics]
        limits = [producer_max]
        for res, fut in client.describe_configs(resources, request_timeout=timeout_s).items():
            key = "message.max.bytes" if res.restype == ConfigResource.Type.BROKER else "max.message.bytes"
            entry = fut.result(timeout=timeout_s).get(key)
            if entry is not None and entry.value is not None:
                limits.append(int(entry.value))
    except KafkaException as exc:
        raise InfraUnavailable("Kafka", bootstrap, str(exc)) from exc
    return min(limits) - RECORD_OVERHEAD
