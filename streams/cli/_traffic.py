"""Traffic commands: produce and simulate (raw messages onto the raw topics)."""

from __future__ import annotations

import ipaddress
import json
import math
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from ..errors import StreamsError
from ..settings import get_settings
from ..topics import topic_names
from ._app import app
from ._common import Sender, connect, fail, kafka_detail, say
from ._sending import DEFAULT_RATE, Meter, RawTopic, drain, finish, line_bytes, summary

__all__: list[str] = []

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
        messages = [line_bytes(line) for line in sys.stdin.buffer]
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
    speed: float = typer.Option(1.0, "--speed", metavar="X",
                                help="Paced runs: send X times faster than event time (4: 60 s of traffic in 15 s)."),
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
    first event divided by --speed (late events are sent at once, never
    dropped), unless --rate 0 or --as-fast-as-possible.

    --truth FILE writes JSON with `attackers` (label -> sorted actor IPs),
    `normal_sources` (benign-only source IPs seen), `counts` (label -> events),
    `topics` (topic -> events), `first_ts_ms`, `last_ts_ms` and the generator
    `config` (rebuilds the same events). Ctrl-C stops cleanly: what was sent is
    flushed and summarised (exit 130).
    """
    from features.events import LABEL_BENIGN
    from features.simulation import ATTACK_LABELS, TOPIC_LOGS, ScenarioConfig, attackers, iter_generate

    for name, v in (("--rate", rate), ("--duration", duration), ("--intensity", intensity), ("--speed", speed)):
        if not math.isfinite(v):
            raise fail(f"{name} must be a finite number, got {v}", 2)
    if rate < 0:
        raise fail(f"--rate must be >= 0, got {rate:g}", 2)
    if duration <= 0:
        raise fail(f"--duration must be > 0 seconds, got {duration:g}", 2)
    if intensity <= 0:
        raise fail(f"--intensity must be > 0, got {intensity:g}", 2)
    if speed <= 0:
        raise fail(f"--speed must be > 0, got {speed:g}", 2)
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
    mode = ("paced" if speed == 1 else f"paced at {speed:g}x") if paced else "as fast as possible"
    say(f"simulating {duration:g} s of traffic (seed {seed}, {volume:g} events/s, {mode}) "
                  f"from {cfg.start.isoformat()}")
    with Meter("simulate") as meter:
        t0 = time.monotonic()
        try:
            for ev in iter_generate(cfg):
                if first_ts is None:
                    first_ts = ev.ts_ms
                if paced:
                    due = t0 + (ev.ts_ms - first_ts) / 1000.0 / speed
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
        interrupted = drain(sender, meter) or interrupted
        elapsed = meter.elapsed

    summary(sender, elapsed, interrupted)
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
    finish(sender, interrupted)
