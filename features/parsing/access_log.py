"""Web server access logs in Common or Combined Log Format, optionally with a trailing response time."""

from __future__ import annotations

import re
from datetime import datetime

from ..errors import ParseError, Reason
from ..events import Event, EventKind
from ._common import INT64_MAX, MAX_RESPONSE_MS, split_remote
from ._time import TimeBounds, check_bounds, clf_ts

__all__ = ["parse_access_log"]


def _quoted(name: str) -> str:
    # Apache escapes quotes inside fields as \", so a quoted field is any run of non-quotes or escapes.
    return rf'"(?P<{name}>(?:[^"\\]|\\.)*)"'


_ACCESS = re.compile(
    r"(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]{1,64})\] "
    + _quoted("req")
    + r" (?P<status>\d{3}) (?P<size>\d{1,19}|-)"
    + rf"(?: {_quoted('ref')} {_quoted('ua')})?"
    + r"(?P<tail>(?: \S+)*)",  # extra fields after the standard ones, e.g. a response time
    re.S,
)
_REQUEST = re.compile(r"(?P<method>[A-Z][A-Z0-9_-]{0,31}) (?P<target>\S+)(?: [A-Z]{2,10}/\d+(?:\.\d+)?)?")
# nginx $request_time is seconds with a dot (0.123); Apache %D is integer microseconds.
_RESPONSE_TIME = re.compile(r"(?P<int>\d{1,15})(?P<frac>\.\d{1,9})?")


def parse_access_log(text: str, *, now: datetime, bounds: TimeBounds | None) -> Event | None:
    """One stripped access-log line to an HTTP Event; None when the text is not an access-log line."""
    m = _ACCESS.fullmatch(text)
    if m is None:
        return None
    ts = check_bounds(clf_ts(m["time"]), now, bounds)
    src_ip, src_host = split_remote(m["client"], "client")
    size = 0 if m["size"] == "-" else int(m["size"])
    if size > INT64_MAX:
        raise ParseError(Reason.BAD_VALUE, f"response size {m['size']} is out of range", field="size")
    method = path = None
    # Real servers log junk request lines ("-", TLS handshakes sent to a plain port); keep the request.
    if r := _REQUEST.fullmatch(m["req"]):
        method, path = r["method"], r["target"]
    response_time_ms = None
    tail = m["tail"].split()
    if tail and (rt := _RESPONSE_TIME.fullmatch(tail[-1])):
        if rt["frac"]:
            response_time_ms = float(tail[-1]) * 1000.0
        else:
            response_time_ms = int(rt["int"]) / 1000.0
        if response_time_ms > MAX_RESPONSE_MS:
            raise ParseError(Reason.BAD_VALUE, f"response time {tail[-1]} is out of range", field="response_time")
    user = m["user"]
    ua = m["ua"]
    return Event(
        kind=EventKind.HTTP,
        ts=ts,
        source="access_log",
        src_ip=src_ip,
        src_host=src_host,
        user=None if user == "-" else user,
        method=method,
        path=path,
        status=int(m["status"]),
        response_bytes=size,
        user_agent=None if ua is None or ua in ("", "-") else ua,
        response_time_ms=response_time_ms,
    )
