"""Thin helpers over confluent-kafka's admin client: reachability and topic creation."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import InfraUnavailable, StreamsError

__all__ = ["admin_client", "ping_kafka", "ensure_topics"]


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
    bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
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
        [NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in missing],
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
