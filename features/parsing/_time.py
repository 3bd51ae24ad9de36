"""Timestamp parsing for every input format, and the plausibility window events must fall in."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from ..errors import ParseError, Reason
from ._common import echo

__all__ = ["TimeBounds", "DEFAULT_BOUNDS", "EPOCH"]

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Below this an epoch number is taken as seconds: 1e11 ms is 1973, 1e11 s is year 5138.
_SECONDS_BELOW = 10**11
_MAX_TS_CHARS = 64

MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip

_INTEGER = re.compile(r"[+-]?\d{1,20}")
_CIC_TS = re.compile(
    r"(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<year>\d{4})[ T]"
    r"(?P<hh>\d{1,2}):(?P<mi>\d{2})(?::(?P<ss>\d{2})(?:\.(?P<frac>\d{1,6}))?)?"
    r"(?:\s*(?P<ampm>[AaPp][Mm]))?"
)
_CLF_TS = re.compile(
    r"(?P<day>\d{1,2})/(?P<mon>[A-Za-z]{3})/(?P<year>\d{4}):(?P<hh>\d{2}):(?P<mi>\d{2}):(?P<ss>\d{2})"
    r"(?:\.(?P<frac>\d{1,6}))? ?(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})"
)


@dataclass(frozen=True)
class TimeBounds:
    """The plausible range of event times; events outside it are refused with TIME_OUT_OF_RANGE."""

    max_future: timedelta = timedelta(days=1)
    not_before: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        if self.not_before.tzinfo is None:  # comparing naive with aware times would fail on every event
            raise ValueError("TimeBounds.not_before must be timezone-aware")


DEFAULT_BOUNDS = TimeBounds()


def as_utc_now(now: datetime) -> datetime:
    """The injected clock as aware UTC (a naive `now` is taken to be UTC already)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def check_bounds(ts: datetime, now: datetime, bounds: TimeBounds | None, key: str = "ts") -> datetime:
    """Return `ts` if it lies within `bounds` around `now`; `bounds=None` accepts any time."""
    if bounds is None:
        return ts
    latest = now + bounds.max_future
    if ts > latest:
        raise ParseError(
            Reason.TIME_OUT_OF_RANGE,
            f"{key} {ts.isoformat()} is later than now + {bounds.max_future} ({latest.isoformat()})",
            field=key,
        )
    if ts < bounds.not_before:
        raise ParseError(
            Reason.TIME_OUT_OF_RANGE,
            f"{key} {ts.isoformat()} is before {bounds.not_before.isoformat()}",
            field=key,
        )
    return ts


def _bad(key: str, value: object, why: str = "is not a timestamp") -> ParseError:
    return ParseError(Reason.BAD_TIMESTAMP, f"{key} {why}: {echo(value)}", field=key)


def parse_iso(text: str, key: str = "ts") -> datetime:
    """ISO-8601 text to aware UTC; a missing offset means UTC."""
    if len(text) > _MAX_TS_CHARS:
        raise _bad(key, text)
    try:
        ts = datetime.fromisoformat(text.strip().replace(",", ".", 1))
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(key, text) from None


def from_epoch(number: int | float, key: str = "ts") -> datetime:
    """Epoch milliseconds (or seconds, when the value is too small to be sensible ms) to aware UTC."""
    if isinstance(number, float) and not math.isfinite(number):
        raise ParseError(Reason.BAD_VALUE, f"{key} is not finite: {number!r}", field=key)
    try:
        if abs(number) < _SECONDS_BELOW:
            return EPOCH + timedelta(seconds=number)
        return EPOCH + timedelta(milliseconds=number)
    except (OverflowError, ValueError):
        raise _bad(key, number, "is not a representable epoch time") from None


def json_ts(value: object, key: str = "ts") -> datetime:
    """A JSON timestamp: integer ms since the epoch, an integer-looking string, or ISO-8601 text."""
    if value is None:
        raise ParseError(Reason.MISSING_FIELD, f"required field {key!r} is absent or null", field=key)
    if isinstance(value, bool):
        raise ParseError(Reason.WRONG_TYPE, f"field {key!r} must be epoch ms or ISO-8601, got a boolean", field=key)
    if isinstance(value, (int, float)):
        return from_epoch(value, key)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return from_epoch(int(text), key)
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ParseError(Reason.BAD_VALUE, f"{key} is not finite: {echo(value)}", field=key)
        return parse_iso(text, key)
    raise ParseError(
        Reason.WRONG_TYPE,
        f"field {key!r} must be epoch ms or ISO-8601, got {type(value).__name__} {echo(value)}",
        field=key,
    )


def syslog_ts(
    month: int, day: int, hh: int, mi: int, ss: int, micro: int, *, now: datetime, year: int | None
) -> datetime:
    """A year-less syslog stamp: explicit `year`, else now's year, else the year before if that is in the future."""
    if year is not None:
        try:
            return datetime(year, month, day, hh, mi, ss, micro, tzinfo=UTC)
        except ValueError:
            raise _bad("ts", f"{year}-{month:02d}-{day:02d} {hh:02d}:{mi:02d}:{ss:02d}") from None
    latest = now + timedelta(days=1)
    # Look back a few years so Feb 29 finds the last leap year instead of failing.
    for candidate in range(now.year, now.year - 5, -1):
        try:
            ts = datetime(candidate, month, day, hh, mi, ss, micro, tzinfo=UTC)
        except ValueError:
            continue
        if ts <= latest:
            return ts
    raise _bad("ts", f"{month:02d}-{day:02d} {hh:02d}:{mi:02d}:{ss:02d}")


def clf_ts(text: str, key: str = "ts") -> datetime:
    """Access-log time `10/Oct/2000:13:55:36 -0700` to aware UTC."""
    m = _CLF_TS.fullmatch(text)
    month = MONTHS.get(m["mon"].title()) if m else None
    if m is None or month is None:
        raise _bad(key, text)
    try:
        offset = timedelta(hours=int(m["oh"]), minutes=int(m["om"]))
        tz = timezone(-offset if m["sign"] == "-" else offset)
        frac = m["frac"]
        micro = int(frac.ljust(6, "0")) if frac else 0
        local = datetime(
            int(m["year"]), month, int(m["day"]), int(m["hh"]), int(m["mi"]), int(m["ss"]), micro, tzinfo=tz
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(key, text) from None


def cic_ts(text: str, key: str = "Timestamp") -> datetime:
    """CICFlowMeter time such as `7/7/2017 3:56` or `3/7/2017 8:55:58` (no zone: UTC).

    The CIC datasets write day/month/year (`3/7/2017` is Monday 3 July 2017), so the first
    number is the day unless that is impossible and the second one is not.
    """
    m = _CIC_TS.fullmatch(text.strip())
    if m is None:
        raise _bad(key, text)
    a, b = int(m["a"]), int(m["b"])
    day, month = (b, a) if a <= 12 < b else (a, b)
    hour = int(m["hh"])
    ampm = m["ampm"]
    if ampm:
        if not 1 <= hour <= 12:
            raise _bad(key, text)
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    frac = m["frac"]
    try:
        return datetime(
            int(m["year"]), month, day, hour, int(m["mi"]), int(m["ss"] or 0),
            int(frac.ljust(6, "0")) if frac else 0, tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise _bad(key, text) from None
