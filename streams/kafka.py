"""Kafka client options (TLS, SASL) for every client the project makes, and admin helpers.

Every confluent-kafka client takes `client_conf(bootstrap)`, every aiokafka client
`aiokafka_security()`, and the Faust app `faust_credentials()`, so one set of settings
(`STREAMGUARD_KAFKA_SECURITY_PROTOCOL`, `..._SASL_*`, `..._SSL_*`) reaches all three libraries.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from .errors import InfraUnavailable, StreamsError
from .settings import get_settings

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["admin_client", "aiokafka_security", "client_conf", "ensure_topics", "faust_credentials", "ping_kafka",
           "read_history", "record_limit", "security_conf"]

# What a record costs in a batch besides its key and value (batch header, record header,
# varints); generous, so a record that passes our check is never refused by the broker.
RECORD_OVERHEAD = 1024


def security_conf(s: Settings | None = None) -> dict[str, Any]:
    """librdkafka (confluent-kafka) options for the configured protocol, and its TLS and SASL settings."""
    s = s or get_settings()
    conf: dict[str, Any] = {"security.protocol": s.kafka_security_protocol.lower()}
    if s.kafka_security_protocol.startswith("SASL_"):
        conf["sasl.mechanism"] = s.kafka_sasl_mechanism
        conf["sasl.username"] = s.kafka_sasl_username
        conf["sasl.password"] = _password(s)
    for key, path in (("ssl.ca.location", s.kafka_ssl_cafile), ("ssl.certificate.location", s.kafka_ssl_certfile),
                      ("ssl.key.location", s.kafka_ssl_keyfile)):
        if path is not None:
            conf[key] = str(path)
    return conf


def client_conf(bootstrap: str, s: Settings | None = None) -> dict[str, Any]:
    """A confluent-kafka client's base configuration: the bootstrap servers and the security options."""
    return {"bootstrap.servers": bootstrap, **security_conf(s)}


def aiokafka_security(s: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer or consumer: the same TLS and SASL as `security_conf`."""
    s = s or get_settings()
    kw: dict[str, Any] = {"security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.startswith("SASL_"):
        kw.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                  sasl_plain_password=_password(s))
    if s.kafka_security_protocol.endswith("SSL"):
        kw["ssl_context"] = _ssl_context(s)
    return kw


def faust_credentials(s: Settings | None = None) -> Any:
    """The Faust app's `broker_credentials` (None for PLAINTEXT)."""
    import faust

    s = s or get_settings()
    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    if s.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(s))
    return faust.SASLCredentials(username=s.kafka_sasl_username, mechanism=s.kafka_sasl_mechanism,
                                 password=_password(s),
                                 ssl_context=_ssl_context(s) if s.kafka_security_protocol == "SASL_SSL" else None)


def _password(s: Settings) -> str:
    return s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else ""


def _ssl_context(s: Settings) -> Any:
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None,
                              certfile=str(s.kafka_ssl_certfile) if s.kafka_ssl_certfile else None,
                              keyfile=str(s.kafka_ssl_keyfile) if s.kafka_ssl_keyfile else None)


def admin_client(bootstrap: str, **conf: Any) -> AdminClient:
    """An admin client for these bootstrap servers (librdkafka logs silenced)."""
    return AdminClient({**client_conf(bootstrap), "log_level": 0, **conf})


def ping_kafka(bootstrap: str, timeout_s: float = 5.0) -> int:
    """Number of brokers answering a metadata request; raises `InfraUnavailable` if none.

    A refused login says so: librdkafka reports it only to the error callback (served by
    `poll`), and the request itself fails as a mere "transport failure".
    """
    from confluent_kafka import KafkaError

    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            refused.append(err.str())

    client = admin_client(bootstrap, error_cb=on_error)
    try:
        md = client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        client.poll(0.5)
        if refused:
            raise InfraUnavailable("Kafka", bootstrap, f"authentication failed: {refused[0]}") from exc
        raise InfraUnavailable("Kafka", bootstrap, str(exc)) from exc
    if not md.brokers:
        raise InfraUnavailable("Kafka", bootstrap, "no brokers in metadata")
    return len(md.brokers)


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1, timeout_s: float = 30.0,
    config: dict[str, str] | None = None, per_topic: Mapping[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with `config`, e.g. compaction, and `per_topic` configs by name);
    returns the names created."""
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
        [NewTopic(n, num_partitions=partitions, replication_factor=replication,
                  config={**(config or {}), **(per_topic or {}).get(n, {})}) for n in missing],
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


def read_history(s: Settings, topic: str, *, since_ms: int | None = None, timeout_s: float = 30.0,
                 group: str = "history") -> Iterator[Any]:
    """Every record of `topic` from `since_ms` (or its start) to its end as of now; no offsets committed."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_conf(s.kafka_bootstrap, s), "group.id": f"{group}-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        md = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            return
        parts = sorted(md.topics[topic].partitions)
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s) for p in parts}
        starts = [TopicPartition(topic, p, marks[p][0] if since_ms is None else since_ms) for p in parts]
        if since_ms is not None:
            starts = consumer.offsets_for_times(starts, timeout=timeout_s)
        # Nothing to read where the partition is empty (all of it expired too), or where nothing
        # is at or after `since_ms` (offsets_for_times answers -1).
        left = {tp.partition: marks[tp.partition][1] for tp in starts
                if 0 <= tp.offset < marks[tp.partition][1]}
        consumer.assign([tp for tp in starts if tp.partition in left])
        quiet_since = time.monotonic()
        while left:
            # consume() waits for its whole batch or its timeout: a short timeout keeps the tail of
            # a topic from costing a wait each call; `timeout_s` bounds how long nothing may come.
            batch = consumer.consume(500, 0.2)
            if not batch:
                if time.monotonic() - quiet_since > timeout_s:
                    raise KafkaException(f"no record of {topic} within {timeout_s:g} s")
                continue
            quiet_since = time.monotonic()
            for msg in batch:
                if msg.error() is not None or msg.partition() not in left:
                    continue
                if msg.offset() + 1 >= left[msg.partition()]:
                    left.pop(msg.partition())
                yield msg
    finally:
        consumer.close()
