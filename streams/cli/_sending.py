"""What the traffic commands share: the progress line, the delivery summary and the exit code."""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ._app import console
from ._common import Sender, kafka_detail, say

__all__ = ["DEFAULT_RATE", "Meter", "RawTopic", "drain", "finish", "line_bytes", "summary"]

# The progress line is redrawn at most this often (seconds).
REFRESH_S = 0.25
# --rate 0 / --as-fast-as-possible still need a traffic volume for the generator.
DEFAULT_RATE = 50.0


class RawTopic(str, Enum):
    logs = "logs"
    flows = "flows"


def line_bytes(raw: bytes) -> bytes:
    """A line without its terminator (`\\n` or `\\r\\n`), otherwise unchanged."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


class Meter:
    """A one-line live progress display on stderr, redrawn at most 4 times a second."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.monotonic()
        self._last = 0.0
        self._live = Live(Text(""), console=console, auto_refresh=False, transient=True)

    def __enter__(self) -> Meter:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, sent: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < REFRESH_S:
            return
        self._last = now
        elapsed = now - self.started
        rate = sent / elapsed if elapsed > 0 else 0.0
        line = f"{self.what}: {sent:,} events sent · {rate:,.0f} events/s · {elapsed:,.1f} s elapsed"
        self._live.update(Text(line + (f" · {extra}" if extra else ""), style="cyan"), refresh=True)


def drain(sender: Sender, meter: Any) -> bool:
    """Wait for the delivery reports; True if Ctrl-C cut that short."""
    meter.update(sender.sent, "waiting for delivery reports", force=True)
    try:
        sender.flush()
    except KeyboardInterrupt:
        return True
    return False


def summary(sender: Sender, seconds: float, interrupted: bool) -> None:
    rate = sender.sent / seconds if seconds > 0 else 0.0
    head = "[yellow]interrupted[/]: " if interrupted else ""
    say(f"{head}sent {sender.sent:,} events in {seconds:,.1f} s ({rate:,.1f} events/s); "
        f"delivered {sender.delivered:,}, failed {sender.failed:,}")
    if sender.per_topic:
        per_topic = " · ".join(f"{escape(t)} {n:,}" for t, n in sorted(sender.per_topic.items()))
        say(f"  per topic: {per_topic}")
    if sender.failed and sender.first_error:
        say(f"[red]delivery failed[/]: {escape(kafka_detail(sender.first_error))}")


def finish(sender: Sender, interrupted: bool) -> None:
    """Exit code: 1 if any delivery failed, 130 if interrupted, else 0."""
    if sender.failed:
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(130)
