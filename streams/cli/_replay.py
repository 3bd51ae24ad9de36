"""`streamguard replay`: a log file or CICFlowMeter CSV onto the raw topics, keeping event time."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ..errors import StreamsError
from ..settings import get_settings
from ..topics import topic_names
from ._app import app
from ._common import Sender, connect, fail, say
from ._sending import Meter, drain, finish, line_bytes, summary

__all__: list[str] = []


def _lines(f: Any, skip_first: bool) -> Iterator[bytes]:
    if skip_first:
        f.readline()
    for raw in f:
        yield line_bytes(raw)


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
    A file whose first line is a CICFlowMeter header (either CICIDS2017 layout,
    85 or 79 columns, as the worker reads them) goes to flows.raw, one message per
    data row (the header is not sent); anything else goes to logs.raw, one message
    per line. Every
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
            interrupted = drain(sender, meter) or interrupted
            elapsed = meter.elapsed

    summary(sender, elapsed, interrupted)
    if skipped:
        say(f"  {skipped:,} empty line(s) skipped")
    if unparsed:
        say(f"  {unparsed:,} line(s) had no readable timestamp: sent unpaced (the worker will "
                      "dead-letter those it cannot parse)")
    finish(sender, interrupted)


def _event_ts_ms(line: bytes, now: datetime, year: int | None) -> int | None:
    """The line's event time (ms) for pacing, or None if it does not parse."""
    from features.parsing import parse_line

    try:
        return parse_line(line, now=now, bounds=None, year=year).ts_ms
    except Exception:  # noqa: BLE001 - only pacing depends on it; the raw line is sent regardless
        return None
