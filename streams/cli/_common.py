"""What the CLI commands share: one-line messages and errors, the broker check, a producer, the model store."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from ..errors import InfraUnavailable, StreamsError
from ..kafka import client_conf
from ..settings import Settings, get_settings
from ..topics import topic_names
from ._app import console

if TYPE_CHECKING:
    from registry import ModelStore
    from scoring.bundle import ModelBundle

__all__ = ["CONNECT_TIMEOUT_S", "FLUSH_TIMEOUT_S", "Sender", "connect", "fail", "ints", "kafka_detail",
           "load_active", "registry", "say"]

# How long to wait for the broker to answer before giving up with one clear line.
CONNECT_TIMEOUT_S = 10.0
# How long to wait, at the end, for the delivery reports of what was produced.
FLUSH_TIMEOUT_S = 60.0


def say(message: str) -> None:
    """Print one message on stderr; long lines are not wrapped (so they stay one line in logs and pipes)."""
    console.print(message, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear error line (never wrapped); returns the `typer.Exit` to raise."""
    say(f"[red]error[/] {escape(' '.join(message.split()))}")
    return typer.Exit(code)


def kafka_detail(detail: str) -> str:
    """The human part of a librdkafka error string (`KafkaError{...,str="..."}` -> `...`)."""
    match = re.search(r'str="([^"]*)"', detail)
    return match.group(1) if match else detail


def connect(settings: Settings, topics: list[str]) -> None:
    """Check the broker answers (quickly) and create the missing topics; one clear line and exit 1 if not."""
    from ..kafka import ensure_topics, ping_kafka

    try:
        ping_kafka(settings.kafka_bootstrap, CONNECT_TIMEOUT_S)
        ensure_topics(settings.kafka_bootstrap, topics, settings.topic_partitions,
                      per_topic=topic_names(settings).configs())
    except InfraUnavailable as exc:
        raise fail(f"{exc.service} at {exc.address} did not answer within {CONNECT_TIMEOUT_S:g} s "
                   f"({kafka_detail(exc.detail)}); is the broker up and STREAMGUARD_KAFKA_BOOTSTRAP right?") from None
    except StreamsError as exc:
        raise fail(str(exc)) from None


class Sender:
    """A confluent-kafka producer that counts delivery reports."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({**client_conf(bootstrap),
            "linger.ms": 20,
            "enable.idempotence": True,  # no duplicates, order kept per partition on retries
            "message.timeout.ms": 30_000,  # a broker that goes away fails deliveries in 30 s, not 5 min
            "log_level": 0,  # librdkafka's own log lines would garble the progress line; errors come via callbacks
            "error_cb": self._on_error,
        })
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        self.fatal: str | None = None
        self.per_topic: Counter[str] = Counter()

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = str(err)
        self.first_error = self.first_error or str(err)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or str(err)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one message; waits (serving delivery reports) while the local queue is full."""
        from confluent_kafka import KafkaException

        if self.fatal:
            raise StreamsError(f"the producer failed: {self.fatal}")
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)
            except KafkaException as exc:  # e.g. a message larger than the broker accepts
                self.failed += 1
                self.first_error = self.first_error or str(exc.args[0] if exc.args else exc)
                break
        self.sent += 1
        self.per_topic[topic] += 1
        self.producer.poll(0)

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, serving delivery reports meanwhile."""
        self.producer.poll(max(0.0, seconds))

    def flush(self) -> None:
        """Wait for every delivery report; what is still queued after the timeout counts as failed."""
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        if left:
            self.failed += left
            self.first_error = self.first_error or f"{left} message(s) not delivered within {FLUSH_TIMEOUT_S:.0f} s"


def registry() -> ModelStore:
    """The configured model store (local directory or MongoDB); a clear error if it cannot be opened."""
    from ..model_store import open_store

    try:
        return open_store(get_settings())
    except StreamsError as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(1) from None


def check_loadable(reg: ModelStore, version: str, name: str | None = None) -> None:
    """Exit with a clear error unless workers would accept `version`: its record signed, its artifact intact."""
    from registry import RegistryError

    from ..model_store import ModelRefused, artifact_cache, checked_record

    s = get_settings()
    name = name or s.model_name
    try:
        checked_record(reg, name, version, secret=s.signing_secret.get_secret_value())
        reg.fetch_artifact(name, version, artifact_cache(s))  # its bytes hash to the signed sha256
    except ModelRefused as exc:
        raise fail(f"workers would refuse it: {exc}") from None
    except RegistryError as exc:
        raise fail(str(exc)) from None


def ints(text: str, option: str) -> list[int]:
    """Comma-separated integers of an option; a usage error naming the option otherwise."""
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None


def load_active(name: str, version: str | None, reg: ModelStore | None = None) -> ModelBundle:
    """The active (or named) version, verified and loaded; a clear error and exit 1 if there is none."""
    from ..model_store import ModelRefused, artifact_cache, describe_store, load_version

    s = get_settings()
    reg = reg if reg is not None else registry()
    info = reg.get(name, version) if version else reg.active(name)
    if info is None:
        console.print(f"[red]error[/] model {name!r} has no active version in {describe_store(s)}; run "
                      "`make models` or `streamguard train`")
        raise typer.Exit(1)
    try:
        return load_version(reg, name, info.version, artifact_cache(s), secret=s.signing_secret.get_secret_value())
    except ModelRefused as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(1) from None


