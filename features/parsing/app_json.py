"""JSON application log records: `{"ts", "level", "service", ...}` objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import ParseError, Reason
from ..events import Event, EventKind
from ._common import MAX_RESPONSE_MS, echo, get_float, get_int, get_ip, get_str
from ._time import TimeBounds, check_bounds, json_ts

__all__ = ["parse_app_object", "envelope_line"]

_REQUIRED = ("ts", "service", "level")
_LEVEL_ALIASES = {"warn": "warning"}


def envelope_line(obj: dict[str, Any]) -> str | None:
    """The raw line inside a log shipper envelope (Fluent Bit `log`, Vector `line`), if `obj` is one."""
    if "service" in obj:
        return None
    for key in ("log", "line"):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


def parse_app_object(obj: dict[str, Any], *, now: datetime, bounds: TimeBounds | None) -> Event:
    """One JSON application record to an APP Event."""
    for key in _REQUIRED:  # report absence before any type or value problem, whatever the key order
        if obj.get(key) is None:
            raise ParseError(Reason.MISSING_FIELD, f"required field {key!r} is absent or null", field=key)
    ts = check_bounds(json_ts(obj["ts"]), now, bounds)
    service = get_str(obj, "service", required=True)
    level = get_str(obj, "level", required=True)
    assert service is not None and level is not None  # required=True guarantees it; narrows for mypy
    if not service.strip():
        raise ParseError(Reason.BAD_VALUE, "field 'service' is blank", field="service")
    level = level.strip().lower()
    level = _LEVEL_ALIASES.get(level, level)
    if not level:
        raise ParseError(Reason.BAD_VALUE, f"field 'level' is blank: {echo(obj['level'])}", field="level")
    message = get_str(obj, "message")
    if message is None:
        message = get_str(obj, "msg")  # the other common spelling (pino, zap, logrus)
    method = get_str(obj, "method")
    return Event(
        kind=EventKind.APP,
        ts=ts,
        source="app_json",
        service=service.strip(),
        level=level,
        message=message,
        response_time_ms=get_float(obj, "response_time_ms", hi=MAX_RESPONSE_MS),
        status=get_int(obj, "status", lo=0, hi=999),
        src_ip=get_ip(obj, "src_ip"),
        user=get_str(obj, "user"),
        host=get_str(obj, "host"),
        method=method.upper() if method else None,
        path=get_str(obj, "path"),
    )
