"""`streamguard tail`: a live terminal view (or JSON lines) of incidents, threats, healing actions and dead letters."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import typer
from rich.live import Live
from rich.markup import escape

from ..kafka import client_conf
from ..settings import get_settings
from ..topics import topic_names
from ._app import app, console
from ._common import connect, fail, kafka_detail, say
from ._view import REFRESH_S, View, decode_record

__all__: list[str] = []


@app.command()
def tail(
    incidents: bool = typer.Option(True, "--incidents/--no-incidents",
                                   help="Show threats.incidents: one row per attack, updated."),
    threats: bool = typer.Option(False, "--threats/--no-threats", help="Also show threats.enriched, every "
                                 "threat event (an attack can be thousands)."),
    actions: bool = typer.Option(True, "--actions/--no-actions", help="Show actions.healing."),
    deadletters: bool = typer.Option(False, "--deadletters", help="Also show ops.deadletter."),
    from_beginning: bool = typer.Option(False, "--from-beginning",
                                        help="Start at the oldest retained records (default: only new ones)."),
    max_records: int = typer.Option(None, "--max", metavar="N", help="Stop after N records."),
    timeout: float = typer.Option(None, "--timeout", metavar="S", help="Stop after S seconds in total."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per record on stdout instead of the live view."),
) -> None:
    """Watch incidents, healing actions and (optionally) threats and dead letters as they arrive.

    A live table on the terminal keeps the last ~20 records (incidents: last
    update, status, severity, label, target, threats so far, max risk, actions;
    threats: time, severity, label, entity, risk, first reasoning sentence; actions: time,
    action, target, ttl, dry-run, reason; dead letters: time, reason, source
    topic:partition@offset, error) with running counts below it. Reads with a
    fresh consumer group, so nothing is committed and other consumers are not
    disturbed; missing topics are created.

    --json prints one JSON object per line to stdout, for scripts: {"kind":
    "incident"|"threat"|"action"|"deadletter", "topic", "partition", "offset",
    "timestamp_ms", "record": {...the wire record...}}; a record that is not a
    valid Incident / ThreatEvent / HealingAction / DeadLetter is never fatal and prints as
    {"kind": "unreadable", "expected": KIND, "topic", "partition", "offset",
    "timestamp_ms", "error": WHY, "size": BYTES, "raw": START_OF_THE_VALUE_AS_TEXT}.

    Stops after --max records, after --timeout seconds, or on Ctrl-C (exit 0).
    """
    from confluent_kafka import Consumer

    from ..wire import DeadLetter, HealingAction, Incident, ThreatEvent

    if max_records is not None and max_records < 1:
        raise fail(f"--max must be >= 1, got {max_records}", 2)
    if timeout is not None and not timeout > 0:
        raise fail(f"--timeout must be > 0 seconds, got {timeout:g}", 2)
    s = get_settings()
    names = topic_names(s)
    wanted = [(on, topic, kind, model) for on, topic, kind, model in (
        (incidents, names.incidents, "incident", Incident),
        (threats, names.threats, "threat", ThreatEvent),
        (actions, names.actions, "action", HealingAction),
        (deadletters, names.deadletter, "deadletter", DeadLetter),
    ) if on]
    if not wanted:
        raise fail("nothing to show: use --incidents, --threats, --actions and/or --deadletters", 2)
    by_topic = {topic: (kind, model) for _, topic, kind, model in wanted}
    started = time.monotonic()
    deadline = started + timeout if timeout is not None else None
    connect(s, list(by_topic))

    consumer = Consumer({**client_conf(s.kafka_bootstrap),
        "group.id": f"streamguard-tail-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
        "log_level": 0,  # errors arrive as error events and are shown once, not as librdkafka log spam
    })
    view = View(kinds=[kind for _, _, kind, _ in wanted], topics=list(by_topic))
    seen = 0
    live: Live | None = None
    last_refresh = 0.0
    last_error: str | None = None
    try:
        consumer.subscribe(list(by_topic))
        if not as_json:
            live = Live(view.render(), console=console, auto_refresh=False, vertical_overflow="visible")
            live.start()
        while max_records is None or seen < max_records:
            wait = REFRESH_S
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            msg = consumer.poll(wait)
            if msg is not None and msg.error():
                err = kafka_detail(str(msg.error()))
                if err != last_error:
                    last_error = err
                    if live is None:
                        say(f"[yellow]consumer[/] {escape(err)}")
                    view.last_error = err
                msg = None
            if msg is not None:
                kind, model = by_topic.get(msg.topic(), ("threat", ThreatEvent))
                rec = decode_record(msg, kind, model)
                seen += 1
                if live is None:
                    try:
                        sys.stdout.write(json.dumps(rec.to_json()) + "\n")
                        sys.stdout.flush()
                    except BrokenPipeError:  # e.g. `| head`: the reader is gone, stop quietly
                        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                        break
                else:
                    view.add(rec)
            if live is not None and time.monotonic() - last_refresh >= REFRESH_S:
                last_refresh = time.monotonic()
                live.update(view.render(), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.update(view.render(final=True), refresh=True)
            live.stop()
            if not console.is_terminal:  # the last frame, printed once, ends without a newline
                console.line()
        consumer.close()
