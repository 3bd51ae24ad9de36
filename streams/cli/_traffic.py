"""Traffic commands: produce, simulate, replay (raw messages onto the raw topics)."""

from __future__ import annotations

import ipaddress
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ..errors import StreamsError
from ..settings import get_settings
from ..topics import topic_names
from ._app import app, console
from ._common import Sender, connect, fail, kafka_detail, say

__all__: list[str] = []

# The progress line is redrawn at most this often (seconds).
_REFRESH_S = 0.25
# --rate 0 / --as-fast-as-possible still need a traffic volume for the generator.
DEFAULT_RATE = 50.0


class RawTopic(str, Enum):
    logs = "logs"
    flows = "flows"


def _line_bytes(raw: bytes) -> bytes:
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
        if not force and now - self._last < _REFRESH_S:
            return
        self._last = now
        elapsed = now - self.started
        rate = sent / elapsed if elapsed > 0 else 0.0
        line = f"{self.what}: {sent:,} events sent · {rate:,.0f} events/s · {elapsed:,.1f} s elapsed"
        self._live.update(Text(line + (f" · {extra}" if extra else ""), style="cyan"), refresh=True)


def _drain(sender: Sender, meter: Any) -> bool:
    """Wait for the delivery reports; True if Ctrl-C cut that short."""
    meter.update(sender.sent, "waiting for delivery reports", force=True)
    try:
        sender.flush()
    except KeyboardInterrupt:
        return True
    return False


def _summary(sender: Sender, seconds: float, interrupted: bool) -> None:
    rate = sender.sent / seconds if seconds > 0 else 0.0
    head = "[yellow]interrupted[/]: " if interrupted else ""
    say(f"{head}sent {sender.sent:,} events in {seconds:,.1f} s ({rate:,.1f} events/s); "
        f"delivered {sender.delivered:,}, failed {sender.failed:,}")
    if sender.per_topic:
        per_topic = " · ".join(f"{escape(t)} {n:,}" for t, n in sorted(sender.per_topic.items()))
        say(f"  per topic: {per_topic}")
    if sender.failed and sender.first_error:
        say(f"[red]delivery failed[/]: {escape(kafka_detail(sender.first_error))}")


def _finish(sender: Sender, interrupted: bool) -> None:
    """Exit code: 1 if any delivery failed, 130 if interrupted, else 0."""
    if sender.failed:
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(130)


# --------------------------------------------------------------------------------------
# produce
# --------------------------------------------------------------------------------------


@app.command()
def produce(
    value: str = typer.Argument(None, metavar="VALUE",
                                help="The message. Omitted or '-': read stdin, one message per non-empty line."),
    topic: RawTopic = typer.Option(RawTopic.logs, "--topic", "-t", help="Raw topic family: 'logs' or 'flows'."),
    key: str = typer.Option(None, "--key", "-k", help="Message key (default: none; the worker repartitions)."),
) -> None:
    """Send raw messages to the logs.raw or flows.raw topic, exactly as given.

    VALUE is sent as one message; without VALUE (or with '-') every non-empty
    line of stdin is one message (line terminators removed). Nothing is
    validated here: the worker parses each message and dead-letters what it
    cannot read. The topic name gets STREAMGUARD_TOPIC_PREFIX and is created if
    missing. Waits for the broker to acknowledge every message; exits 1 if any
    delivery failed.

    Example: printf 'line one\\nline two\\n' | streamguard produce --topic logs
    """
    s = get_settings()
    names = topic_names(s)
    target = names.logs_raw if topic is RawTopic.logs else names.flows_raw
    if value is None or value == "-":
        if sys.stdin.isatty():
            say("[dim]reading messages from stdin, one per line; end with Ctrl-D[/]")
        messages = [_line_bytes(line) for line in sys.stdin.buffer]
        messages = [m for m in messages if m.strip()]
    else:
        messages = [value.encode("utf-8", "surrogateescape")]
    if not messages:
        say("nothing to send: stdin held no non-empty line")
        raise typer.Exit(0)
    key_bytes = key.encode("utf-8", "surrogateescape") if key is not None else None
    connect(s, [target])
    sender = Sender(s.kafka_bootstrap)
    try:
        for message in messages:
            sender.send(target, message, key_bytes)
    except StreamsError as exc:
        say(f"[red]error[/] {escape(str(exc))}")
    finally:
        sender.flush()
    colour = "red" if sender.failed else "green"
    say(f"[{colour}]delivered {sender.delivered:,} of {len(messages):,} message(s)[/] to {escape(target)}")
    if sender.failed and sender.first_error:
        say(f"[red]delivery failed[/]: {escape(kafka_detail(sender.first_error))}")
    raise typer.Exit(1 if sender.failed or sender.delivered < len(messages) else 0)


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------


def _parse_start(text: str) -> datetime:
    if text.strip().lower() == "now":
        start = datetime.now(UTC)
    else:
        try:
            start = datetime.fromisoformat(text.strip())
        except ValueError:
            raise fail(f"--start: expected 'now' or an ISO 8601 time such as 2026-01-05T09:00:00Z, got {text!r}",
                       2) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        start = start.astimezone(UTC)
    # Whole milliseconds, so the start written to --truth rebuilds the same scenario exactly.
    return start.replace(microsecond=start.microsecond // 1000 * 1000)


def _looks_like_ipv4(s: str) -> bool:
    # Same test as features.simulation.normal_sources uses.
    parts = s.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


@app.command()
def simulate(
    rate: float = typer.Option(DEFAULT_RATE, "--rate", metavar="EPS",
                               help="Events per second, attacks included (benign traffic is ~90% of it). "
                                    f"0 = send as fast as possible, at the default volume of {DEFAULT_RATE:g}/s."),
    as_fast_as_possible: bool = typer.Option(False, "--as-fast-as-possible",
                                             help="Do not pace: send every event at once (event times unchanged)."),
    duration: float = typer.Option(600.0, "--duration", metavar="S", help="Seconds of traffic (event time)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Generator seed: same seed and options, same traffic."),
    intensity: float = typer.Option(1.0, "--intensity", metavar="X", help="Scales the attacks' event rates."),
    allowlisted_attacker: str = typer.Option(None, "--allowlisted-attacker", metavar="IP",
                                             help="One brute-force attacker uses this IP (to test the allowlist)."),
    start: str = typer.Option("now", "--start", metavar="now|ISO",
                              help="Event time of the run's start: 'now' (the wall clock) or an ISO 8601 time."),
    no_attacks: bool = typer.Option(False, "--no-attacks", help="Benign traffic only."),
    truth: Path = typer.Option(None, "--truth", metavar="FILE", dir_okay=False,
                               help="Write the ground truth of what was sent here, as JSON."),
) -> None:
    """Produce realistic labelled traffic from the scenario generator onto the raw topics.

    Benign traffic (sshd, access and app logs, flows) with attacks (brute force,
    password spraying, credential stuffing, port scan, DDoS, SQL injection, XSS,
    path traversal) during part of the run. Log records go to logs.raw, flow
    records to flows.raw, keyed by the acting source. Event times start at
    --start; each event is sent when the wall clock reaches its offset from the
    first event (late events are sent at once, never dropped), unless --rate 0
    or --as-fast-as-possible.

    --truth FILE writes JSON with `attackers` (label -> sorted actor IPs),
    `normal_sources` (benign-only source IPs seen), `counts` (label -> events),
    `topics` (topic -> events), `first_ts_ms`, `last_ts_ms` and the generator
    `config` (rebuilds the same events). Ctrl-C stops cleanly: what was sent is
    flushed and summarised (exit 130).
    """
    from features.events import LABEL_BENIGN
    from features.simulation import ATTACK_LABELS, TOPIC_LOGS, ScenarioConfig, attackers, iter_generate

    for name, v in (("--rate", rate), ("--duration", duration), ("--intensity", intensity)):
        if not math.isfinite(v):
            raise fail(f"{name} must be a finite number, got {v}", 2)
    if rate < 0:
        raise fail(f"--rate must be >= 0, got {rate:g}", 2)
    if duration <= 0:
        raise fail(f"--duration must be > 0 seconds, got {duration:g}", 2)
    if intensity <= 0:
        raise fail(f"--intensity must be > 0, got {intensity:g}", 2)
    if allowlisted_attacker is not None:
        try:
            allowlisted_attacker = str(ipaddress.ip_address(allowlisted_attacker.strip()))
        except ValueError:
            raise fail(f"--allowlisted-attacker: not an IP address: {allowlisted_attacker!r}", 2) from None
    if truth is not None and not truth.parent.is_dir():
        raise fail(f"--truth: directory {str(truth.parent)!r} does not exist", 2)
    paced = rate > 0 and not as_fast_as_possible
    volume = rate if rate > 0 else DEFAULT_RATE
    cfg = ScenarioConfig(
        seed=seed,
        start=_parse_start(start),
        duration_s=duration,
        benign_eps=volume if no_attacks else volume * 0.9,
        attack_intensity=intensity,
        attacks=() if no_attacks else ScenarioConfig.attacks,
        allowlisted_attacker=allowlisted_attacker,
    )
    try:
        truth_attackers = attackers(cfg)  # also validates the config
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    s = get_settings()
    names = topic_names(s)
    connect(s, [names.logs_raw, names.flows_raw])
    sender = Sender(s.kafka_bootstrap)
    labels: Counter[str] = Counter()
    benign_sources: set[str] = set()
    first_ts = last_ts = None
    interrupted = False
    mode = "paced" if paced else "as fast as possible"
    say(f"simulating {duration:g} s of traffic (seed {seed}, {volume:g} events/s, {mode}) "
                  f"from {cfg.start.isoformat()}")
    with Meter("simulate") as meter:
        t0 = time.monotonic()
        try:
            for ev in iter_generate(cfg):
                if first_ts is None:
                    first_ts = ev.ts_ms
                if paced:
                    due = t0 + (ev.ts_ms - first_ts) / 1000.0
                    while (wait := due - time.monotonic()) > 0:
                        sender.wait(min(wait, 0.05))
                        meter.update(sender.sent)
                topic = names.logs_raw if ev.topic == TOPIC_LOGS else names.flows_raw
                sender.send(topic, ev.payload, ev.actor.encode())
                labels[ev.label] += 1
                last_ts = ev.ts_ms
                if ev.label == LABEL_BENIGN and _looks_like_ipv4(ev.actor):
                    benign_sources.add(ev.actor)
                meter.update(sender.sent)
        except KeyboardInterrupt:
            interrupted = True
        except StreamsError as exc:
            say(f"[red]error[/] {escape(str(exc))}")
        interrupted = _drain(sender, meter) or interrupted
        elapsed = meter.elapsed

    _summary(sender, elapsed, interrupted)
    if labels:
        per_label = " · ".join(f"{label} {n:,}" for label, n in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])))
        say(f"  per label: {per_label}")
    if truth is not None:
        bad = set().union(*truth_attackers.values())
        doc = {
            "attackers": {label: sorted(truth_attackers.get(label, ())) for label in ATTACK_LABELS},
            "normal_sources": sorted(benign_sources - bad),
            "counts": dict(sorted(labels.items())),
            "topics": dict(sorted(sender.per_topic.items())),
            "first_ts_ms": first_ts,
            "last_ts_ms": last_ts,
            "interrupted": interrupted,
            "config": {
                "seed": cfg.seed,
                "start": cfg.start.isoformat(timespec="milliseconds"),
                "duration_s": cfg.duration_s,
                "benign_eps": cfg.benign_eps,
                "attacks": list(cfg.attacks),
                "attack_intensity": cfg.attack_intensity,
                "attackers_per_scenario": cfg.attackers_per_scenario,
                "allowlisted_attacker": cfg.allowlisted_attacker,
            },
        }
        try:
            truth.write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            raise fail(f"could not write --truth {str(truth)!r}: {exc.strerror or exc}") from None
        say(f"ground truth written to {escape(str(truth))}")
    _finish(sender, interrupted)


# --------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------


def _lines(f: Any, skip_first: bool) -> Iterator[bytes]:
    if skip_first:
        f.readline()
    for raw in f:
        yield _line_bytes(raw)


@app.command()
def replay(
    file: Path = typer.Argument(..., metavar="FILE", help="Log file (syslog/sshd, access log, JSON lines) or a "
                                                         "CICFlowMeter CSV."),
    speed: float = typer.Option(0.0, "--speed", metavar="X",
                                help="0 = as fast as possible; X > 0 = paced by the events' own timestamps, "
                                     "X times real time (1 = real time, 10 = ten times faster)."),
    year: int = typer.Option(None, "--year", metavar="Y",
                             help="Year of syslog timestamps (they carry none), for pacing only."),
    key: str = typer.Option(None, "--key", "-k", metavar="KEY",
                            help="Message key for every line (default: the file's name, so the file's order "
                                 "is kept on one partition)."),
    spread: bool = typer.Option(False, "--spread",
                                help="Send without a key: lines spread over all partitions (faster, but "
                                     "a worker may then see one entity's events out of order)."),
) -> None:
    """Replay a log file or CICFlowMeter CSV onto the raw topics, keeping event time.

    Each line is sent unchanged (bytes as in the file, without the line
    terminator; empty lines skipped), so its own timestamp stays the event time.
    A file whose first line is a CICFlowMeter header (starts with 'Flow ID,' or
    'Destination Port,') goes to flows.raw, one message per data row (the header
    is not sent); anything else goes to logs.raw, one message per line. Every
    line carries the same key (the file's name unless --key), so the worker reads
    the file in its order, as from a shipper tailing it; the worker repartitions
    by entity itself. Windows count out-of-order events too, but an event is
    judged on what has arrived before it: --spread trades that order for speed.

    With --speed X > 0 the lines are paced by their parsed timestamps; lines
    that cannot be parsed are sent at once (the worker dead-letters them).
    Ctrl-C stops cleanly (exit 130).
    """
    from features.parsing import is_cicflowmeter_header

    if not math.isfinite(speed) or speed < 0:
        raise fail(f"--speed must be >= 0, got {speed:g}", 2)
    if year is not None and not 1970 <= year <= 9999:
        raise fail(f"--year must be between 1970 and 9999, got {year}", 2)
    if spread and key is not None:
        raise fail("--key and --spread exclude each other", 2)
    if not file.exists():
        raise fail(f"no such file: {str(file)!r}")
    if not file.is_file():
        raise fail(f"not a regular file: {str(file)!r}")
    try:
        f = open(file, "rb")
    except OSError as exc:
        raise fail(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    try:
        first = f.readline()
        f.seek(0)
    except OSError as exc:
        f.close()
        raise fail(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None

    with f:
        is_csv = is_cicflowmeter_header(first)
        s = get_settings()
        names = topic_names(s)
        target = names.flows_raw if is_csv else names.logs_raw
        connect(s, [target])
        kind = "CICFlowMeter CSV rows" if is_csv else "log lines"
        pacing = f"paced at {speed:g}x" if speed > 0 else "as fast as possible"
        key_bytes = None if spread else (key if key is not None else file.name).encode("utf-8", "surrogateescape")
        say(f"replaying {kind} of {escape(str(file))} to {escape(target)} ({pacing})")
        sender = Sender(s.kafka_bootstrap)
        skipped = unparsed = 0
        interrupted = False
        now = datetime.now(UTC)
        with Meter("replay") as meter:
            t0 = time.monotonic()
            first_ts: int | None = None
            try:
                for line in _lines(f, skip_first=is_csv):
                    if not line.strip():
                        skipped += 1
                        continue
                    if speed > 0:
                        ts = _event_ts_ms(line, now, year)
                        if ts is None:
                            unparsed += 1
                        else:
                            if first_ts is None:
                                first_ts = ts
                            due = t0 + (ts - first_ts) / 1000.0 / speed
                            while (wait := due - time.monotonic()) > 0:
                                sender.wait(min(wait, 0.05))
                                meter.update(sender.sent)
                    sender.send(target, line, key_bytes)
                    meter.update(sender.sent)
            except KeyboardInterrupt:
                interrupted = True
            except StreamsError as exc:
                say(f"[red]error[/] {escape(str(exc))}")
            except OSError as exc:
                say(f"[red]error[/] reading {escape(str(file))}: {escape(exc.strerror or str(exc))}")
                sender.failed += 1
            interrupted = _drain(sender, meter) or interrupted
            elapsed = meter.elapsed

    _summary(sender, elapsed, interrupted)
    if skipped:
        say(f"  {skipped:,} empty line(s) skipped")
    if unparsed:
        say(f"  {unparsed:,} line(s) had no readable timestamp: sent unpaced (the worker will "
                      "dead-letter those it cannot parse)")
    _finish(sender, interrupted)


def _event_ts_ms(line: bytes, now: datetime, year: int | None) -> int | None:
    """The line's event time (ms) for pacing, or None if it does not parse."""
    from features.parsing import parse_line

    try:
        return parse_line(line, now=now, bounds=None, year=year).ts_ms
    except Exception:  # noqa: BLE001 - only pacing depends on it; the raw line is sent regardless
        return None
