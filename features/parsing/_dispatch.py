"""Entry points: pick the parser for a message by its shape and turn every failure into a ParseError."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from ..errors import ParseError, Reason
from ..events import Event
from ._common import echo, load_object, refuse_json_scalar, to_text
from ._time import DEFAULT_BOUNDS, TimeBounds, as_utc_now
from .access_log import parse_access_log
from .app_json import envelope_line, parse_app_object
from .cicflowmeter import parse_cic_line
from .flows import FLOW_KEYS, parse_flow_object
from .syslog import parse_syslog

__all__ = ["parse_log", "parse_flow", "parse_line", "read_log_file"]

_MAX_ENVELOPE_DEPTH = 3  # a shipper envelope inside an envelope is plausible; deeper is abuse


def _is_json(text: str) -> bool:
    return text[0] in "{["


def _log_text(text: str, now: datetime, bounds: TimeBounds | None, year: int | None) -> Event | None:
    event = parse_syslog(text, now=now, bounds=bounds, year=year)
    if event is None:
        event = parse_access_log(text, now=now, bounds=bounds)
    return event


def _unknown(text: str, what: str) -> ParseError:
    refuse_json_scalar(text)  # `42` or `"hi"` is JSON, just not an object; say so rather than "unknown"
    return ParseError(Reason.UNKNOWN_FORMAT, f"not {what}: {echo(text)}")


def _envelope(obj: dict[str, Any], depth: int) -> str | None:
    inner = envelope_line(obj)
    if inner is not None and depth >= _MAX_ENVELOPE_DEPTH:
        raise ParseError(Reason.UNKNOWN_FORMAT, f"log shipper envelopes nested more than {_MAX_ENVELOPE_DEPTH} deep")
    return inner


def _parse_log(raw: object, now: datetime, bounds: TimeBounds | None, year: int | None, depth: int) -> Event:
    text = to_text(raw)
    if _is_json(text):
        obj = load_object(text)
        inner = _envelope(obj, depth)
        if inner is not None:
            return _parse_log(inner, now, bounds, year, depth + 1)
        return parse_app_object(obj, now=now, bounds=bounds)
    event = _log_text(text, now, bounds, year)
    if event is None:
        raise _unknown(text, "a syslog, access-log or JSON log line")
    return event


def _parse_flow(raw: object, now: datetime, bounds: TimeBounds | None) -> Event:
    text = to_text(raw)
    if _is_json(text):
        return parse_flow_object(load_object(text), now=now, bounds=bounds)
    event = parse_cic_line(text, now=now, bounds=bounds)
    if event is None:
        raise _unknown(text, "a JSON flow or a CICFlowMeter CSV row (85 or 79 fields)")
    return event


def _parse_line(raw: object, now: datetime, bounds: TimeBounds | None, year: int | None, depth: int) -> Event:
    text = to_text(raw)
    if _is_json(text):
        obj = load_object(text)
        inner = _envelope(obj, depth)
        if inner is not None:
            return _parse_line(inner, now, bounds, year, depth + 1)
        if "service" not in obj and not FLOW_KEYS.isdisjoint(obj):
            return parse_flow_object(obj, now=now, bounds=bounds)
        return parse_app_object(obj, now=now, bounds=bounds)
    event = _log_text(text, now, bounds, year)
    if event is None:
        event = parse_cic_line(text, now=now, bounds=bounds)
    if event is None:
        raise _unknown(text, "a known log or flow format")
    return event


def _guarded(parse: Callable[..., Event], raw: bytes | str, now: datetime, *args: object) -> Event:
    """Run a parser; any exception but ParseError becomes one, so a parser bug still reaches the dead letters."""
    now = as_utc_now(now)  # outside the guard: a bad clock is the caller's bug, not bad input
    try:
        return parse(raw, now, *args)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(Reason.UNKNOWN_FORMAT, f"unparseable input ({type(exc).__name__}: {echo(str(exc))})") from exc


def parse_log(
    raw: bytes | str, *, now: datetime, bounds: TimeBounds | None = DEFAULT_BOUNDS, year: int | None = None
) -> Event:
    """One raw log message (syslog, access log, JSON app log or shipper envelope) to an Event."""
    return _guarded(_parse_log, raw, now, bounds, year, 0)


def parse_flow(raw: bytes | str, *, now: datetime, bounds: TimeBounds | None = DEFAULT_BOUNDS) -> Event:
    """One raw flow message (minimal JSON schema or header-less CICFlowMeter CSV row) to an Event."""
    return _guarded(_parse_flow, raw, now, bounds)


def parse_line(
    raw: bytes | str, *, now: datetime, bounds: TimeBounds | None = DEFAULT_BOUNDS, year: int | None = None
) -> Event:
    """One raw message of either topic: tries the log formats, then the flow formats."""
    return _guarded(_parse_line, raw, now, bounds, year, 0)


def read_log_file(
    path: str | os.PathLike[str], *, now: datetime, year: int | None = None, bounds: TimeBounds | None = None
) -> Iterator[Event | ParseError]:
    """Events of a log file, one Event or ParseError (detail prefixed with the line number) per non-empty line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            item: Event | ParseError
            try:
                item = parse_log(raw, now=now, bounds=bounds, year=year)
            except ParseError as exc:
                item = ParseError(exc.reason, f"line {lineno}: {exc.detail}", field=exc.field)
            yield item
