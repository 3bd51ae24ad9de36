"""CICFlowMeter CSV flows (CICIDS2017): the 85-column and the 79-column header variants."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import ParseError, Reason
from ..events import Event, EventKind
from ._common import INT64_MAX, MAX_MESSAGE_BYTES, check_ip, echo
from ._time import TimeBounds, as_utc_now, check_bounds, cic_ts
from .flows import normalise_label

__all__ = ["is_cicflowmeter_header", "parse_cic_line", "read_cicflowmeter_csv"]

# The 85-column header of the CICIDS2017 GeneratedLabelledFlows files (names stripped).
HEADER_85: tuple[str, ...] = (
    "Flow ID", "Source IP", "Source Port", "Destination IP", "Destination Port", "Protocol", "Timestamp",
    "Flow Duration", "Total Fwd Packets", "Total Backward Packets", "Total Length of Fwd Packets",
    "Total Length of Bwd Packets", "Fwd Packet Length Max", "Fwd Packet Length Min", "Fwd Packet Length Mean",
    "Fwd Packet Length Std", "Bwd Packet Length Max", "Bwd Packet Length Min", "Bwd Packet Length Mean",
    "Bwd Packet Length Std", "Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std", "Flow IAT Max",
    "Flow IAT Min", "Fwd IAT Total", "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max", "Fwd IAT Min", "Bwd IAT Total",
    "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max", "Bwd IAT Min", "Fwd PSH Flags", "Bwd PSH Flags", "Fwd URG Flags",
    "Bwd URG Flags", "Fwd Header Length", "Bwd Header Length", "Fwd Packets/s", "Bwd Packets/s",
    "Min Packet Length", "Max Packet Length", "Packet Length Mean", "Packet Length Std", "Packet Length Variance",
    "FIN Flag Count", "SYN Flag Count", "RST Flag Count", "PSH Flag Count", "ACK Flag Count", "URG Flag Count",
    "CWE Flag Count", "ECE Flag Count", "Down/Up Ratio", "Average Packet Size", "Avg Fwd Segment Size",
    "Avg Bwd Segment Size", "Fwd Header Length.1", "Fwd Avg Bytes/Bulk", "Fwd Avg Packets/Bulk",
    "Fwd Avg Bulk Rate", "Bwd Avg Bytes/Bulk", "Bwd Avg Packets/Bulk", "Bwd Avg Bulk Rate", "Subflow Fwd Packets",
    "Subflow Fwd Bytes", "Subflow Bwd Packets", "Subflow Bwd Bytes", "Init_Win_bytes_forward",
    "Init_Win_bytes_backward", "act_data_pkt_fwd", "min_seg_size_forward", "Active Mean", "Active Std",
    "Active Max", "Active Min", "Idle Mean", "Idle Std", "Idle Max", "Idle Min", "Label",
)  # fmt: skip
_ONLY_IN_85 = frozenset({"Flow ID", "Source IP", "Source Port", "Destination IP", "Protocol", "Timestamp"})
# The 79-column MachineLearningCVE variant: no flow identity or time, and the duplicate column unrenamed.
HEADER_79: tuple[str, ...] = tuple(
    name.removesuffix(".1") for name in HEADER_85 if name not in _ONLY_IN_85
)

_ROLES = {
    "Flow ID": "flow_id",
    "Source IP": "src_ip",
    "Source Port": "src_port",
    "Destination IP": "dst_ip",
    "Destination Port": "dst_port",
    "Protocol": "protocol",
    "Timestamp": "ts",
    "Flow Duration": "duration",
    "Total Fwd Packets": "fwd_packets",
    "Total Backward Packets": "bwd_packets",
    "Total Length of Fwd Packets": "fwd_bytes",
    "Total Length of Bwd Packets": "bwd_bytes",
    "FIN Flag Count": "fin_count",
    "SYN Flag Count": "syn_count",
    "RST Flag Count": "rst_count",
    "PSH Flag Count": "psh_count",
    "ACK Flag Count": "ack_count",
    "URG Flag Count": "urg_count",
    "Label": "label",
}
_COUNT_ROLES = (
    "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes",
    "syn_count", "ack_count", "fin_count", "rst_count", "psh_count", "urg_count",
)  # fmt: skip
_REQUIRED_ROLES = frozenset({"dst_port", "duration", *_COUNT_ROLES})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_DNS_PORT = 53


def _snake(name: str) -> str:
    return _NON_ALNUM.sub("_", name.lower()).strip("_")


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each mapped field sits in a row of one header variant, and the extras' keys."""

    names: tuple[str, ...]
    roles: dict[str, int]
    extras: tuple[tuple[int, str, str], ...]  # (index, extra key, column name)


def _layout(names: Sequence[str]) -> _Layout | None:
    """The layout of a header, or None when it lacks a column every flow needs."""
    roles: dict[str, int] = {}
    extras: list[tuple[int, str, str]] = []
    used: set[str] = set()
    for i, name in enumerate(names):
        role = _ROLES.get(name)
        if role is not None and role not in roles:
            roles[role] = i
            continue
        key = _snake(name) or f"column_{i}"
        # `Fwd Header Length` appears twice; both variants give the second one the key fwd_header_length_1.
        base, n = key, 0
        while key in used:
            n += 1
            key = f"{base}_{n}"
        used.add(key)
        extras.append((i, key, name))
    if not _REQUIRED_ROLES <= roles.keys():
        return None
    return _Layout(names=tuple(names), roles=roles, extras=tuple(extras))


_LAYOUT_85 = _layout(HEADER_85)
_LAYOUT_79 = _layout(HEADER_79)
assert _LAYOUT_85 is not None and _LAYOUT_79 is not None
_BY_COMMAS = {len(HEADER_85) - 1: _LAYOUT_85, len(HEADER_79) - 1: _LAYOUT_79}
_HEADER_FIRST = frozenset({HEADER_85[0], HEADER_79[0]})


def _not_a_number(name: str, text: str) -> ParseError:
    return ParseError(Reason.WRONG_TYPE, f"column {name!r} is not a number: {echo(text)}", field=name)


def _int(text: str, name: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    """A whole-number cell in [lo, hi]."""
    try:
        number = int(text)
    except ValueError:
        if not text.strip():
            raise ParseError(Reason.MISSING_FIELD, f"column {name!r} is empty", field=name) from None
        try:
            value = float(text)
        except ValueError:
            raise _not_a_number(name, text) from None
        if not math.isfinite(value) or not value.is_integer():
            raise ParseError(Reason.BAD_VALUE, f"column {name!r} is not a whole number: {echo(text)}",
                             field=name) from None
        number = int(value)
    if not lo <= number <= hi:
        raise ParseError(Reason.BAD_VALUE, f"column {name!r} = {number} is outside {lo}..{hi}", field=name)
    return number


def _parse_fields(fields: list[str], layout: _Layout, now: datetime, bounds: TimeBounds | None) -> Event:
    """One split CSV row to a FLOW Event."""
    names = layout.names
    if len(fields) != len(names):
        raise ParseError(Reason.UNKNOWN_FORMAT, f"row has {len(fields)} fields, header has {len(names)}")
    roles = layout.roles
    counts = {role: _int(fields[roles[role]], names[roles[role]]) for role in _COUNT_ROLES}
    i = roles["dst_port"]
    dst_port = _int(fields[i], names[i], hi=65535)
    i = roles["duration"]
    try:
        duration_us = float(fields[i])
    except ValueError:
        raise _not_a_number(names[i], fields[i]) from None
    if not math.isfinite(duration_us):
        raise ParseError(Reason.BAD_VALUE, f"column {names[i]!r} is not finite: {echo(fields[i])}", field=names[i])
    # CICIDS2017 has a few negative durations (clock artefacts of the capture); they mean "about zero".
    duration_s = max(duration_us, 0.0) / 1e6

    if (i := roles.get("protocol")) is not None:
        protocol = _int(fields[i], names[i], hi=255)
    else:  # the 79-column variant has no protocol; its flows are TCP except DNS
        protocol = 17 if dst_port == _DNS_PORT else 6
    src_ip = check_ip(fields[i], names[i]) if (i := roles.get("src_ip")) is not None else None
    dst_ip = check_ip(fields[i], names[i]) if (i := roles.get("dst_ip")) is not None else None
    src_port = _int(fields[i], names[i], hi=65535) if (i := roles.get("src_port")) is not None else None
    if (i := roles.get("ts")) is not None:
        ts = check_bounds(cic_ts(fields[i], names[i]), now, bounds, names[i])
    else:  # the 79-column variant carries no time: the flow is observed now
        ts = now
    label = normalise_label(fields[i]) if (i := roles.get("label")) is not None else None

    extra: dict[str, float] = {}
    nonfinite = 0
    for i, key, name in layout.extras:
        text = fields[i]
        try:
            value = float(text)
        except ValueError:
            if text.strip():
                raise _not_a_number(name, text) from None
            value = math.nan  # an empty cell is a missing value, like pandas' NaN
        if not math.isfinite(value):
            # Flow Bytes/s and Flow Packets/s are Infinity/NaN for zero-duration flows in the real data.
            nonfinite += 1
            value = 0.0
        extra[key] = value
    extra["nonfinite_fields"] = float(nonfinite)

    return Event(
        kind=EventKind.FLOW,
        ts=ts,
        source="cicflowmeter",
        src_ip=src_ip,
        dst_ip=dst_ip,
        src_port=src_port,
        dst_port=dst_port,
        protocol=protocol,
        duration_s=duration_s,
        label=label or None,
        extra=extra,
        **counts,
    )


def parse_cic_line(text: str, *, now: datetime, bounds: TimeBounds | None) -> Event | None:
    """A header-less CICFlowMeter row (85 or 79 fields) to an Event; None when the field count fits neither."""
    layout = _BY_COMMAS.get(text.count(","))
    if layout is None:
        return None
    fields = text.split(",")
    if fields[0].strip() in _HEADER_FIRST:
        raise ParseError(Reason.UNKNOWN_FORMAT, "CICFlowMeter CSV header row, not a flow")
    return _parse_fields(fields, layout, now, bounds)


def _decode(raw: bytes) -> str:
    # The CICIDS2017 files hold cp1252 bytes (a lone 0x96 en dash in Web Attack labels); latin-1 never fails.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_layout(line: bytes | str) -> _Layout | None:
    """The layout a header line names, or None when it is not a CICFlowMeter header."""
    text = _decode(line) if isinstance(line, bytes) else line
    names = tuple(name.strip() for name in text.lstrip("\ufeff").strip().split(","))
    if names == HEADER_85:
        return _LAYOUT_85
    if names == HEADER_79:
        return _LAYOUT_79
    return _layout(names)


def is_cicflowmeter_header(line: bytes | str) -> bool:
    """Whether a line is a CICFlowMeter CSV header (either variant) that `read_cicflowmeter_csv` accepts."""
    return _header_layout(line) is not None


def read_cicflowmeter_csv(
    path: str | os.PathLike[str], *, now: datetime, bounds: TimeBounds | None = None
) -> Iterator[Event | ParseError]:
    """Flows of a CICFlowMeter CSV file, one Event or ParseError per data row, in file order.

    The header picks the variant; an unrecognised header yields a single ParseError.
    """
    now = as_utc_now(now)
    with open(path, "rb") as f:
        header = _decode(f.readline()).lstrip("\ufeff").strip()
        if not header:
            return
        layout = _header_layout(header)
        if layout is None:
            yield ParseError(Reason.UNKNOWN_FORMAT, f"line 1: not a CICFlowMeter header: {echo(header)}")
            return
        for lineno, raw in enumerate(f, start=2):
            if not raw.strip():
                continue
            item: Event | ParseError
            try:
                if len(raw) > MAX_MESSAGE_BYTES:
                    raise ParseError(Reason.TOO_LARGE, f"row of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
                item = _parse_fields(_decode(raw).strip("\r\n").split(","), layout, now, bounds)
            except ParseError as exc:
                item = ParseError(exc.reason, f"line {lineno}: {exc.detail}", field=exc.field)
            yield item
