"""The minimal JSON flow schema of the flows topic, and ground-truth label normalisation."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..errors import ParseError, Reason
from ..events import Event, EventKind
from ._common import check_int, echo, get_float, get_int, get_ip, get_str
from ._time import TimeBounds, check_bounds, json_ts

__all__ = ["parse_flow_object", "normalise_label", "FLOW_KEYS"]

_REQUIRED = ("ts", "src_ip", "dst_ip", "dst_port", "protocol", "fwd_packets", "fwd_bytes")
# Keys only a flow has: used to tell flows from app records when one parser takes both topics.
FLOW_KEYS = frozenset({"dst_ip", "dst_port", "protocol", "fwd_packets", "fwd_bytes", "bwd_packets", "bwd_bytes"})
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "gre": 47}
_FLAGS = ("syn", "ack", "fin", "rst", "psh", "urg")

# en dash as cp1252 byte 0x96 read as latin-1, the Unicode dashes, minus sign, and U+FFFD from a lossy decode.
_DASHES = str.maketrans(dict.fromkeys("\x96\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\ufffd", "-"))
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_LABEL_ALIASES = {"portscan": "port_scan"}


@lru_cache(maxsize=4096)  # a stream carries few distinct labels; skip the regex work on repeats
def normalise_label(raw: str) -> str:
    """Canonical snake_case label: BENIGN -> benign, PortScan -> port_scan, Web Attack – XSS -> web_attack_xss."""
    text = raw.strip().translate(_DASHES).lower()
    snake = _NON_ALNUM.sub("_", text).strip("_")
    return _LABEL_ALIASES.get(snake, snake)


def _protocol(value: object) -> int:
    if isinstance(value, str):
        name = value.strip().lower()
        if name.isdigit():
            return check_int(int(name), "protocol", lo=0, hi=255)
        number = _PROTOCOLS.get(name)
        if number is None:
            detail = f"field 'protocol' is not a known protocol: {echo(value)}"
            raise ParseError(Reason.BAD_VALUE, detail, field="protocol")
        return number
    return check_int(value, "protocol", lo=0, hi=255)


def _flags(obj: dict[str, Any]) -> dict[str, int]:
    raw = obj.get("flags")
    if raw is None:
        return dict.fromkeys(_FLAGS, 0)
    if not isinstance(raw, dict):
        raise ParseError(Reason.WRONG_TYPE, f"field 'flags' must be an object, got {echo(raw)}", field="flags")
    out = {}
    for name in _FLAGS:
        value = raw.get(name)
        out[name] = 0 if value is None else check_int(value, f"flags.{name}")
    return out


def parse_flow_object(obj: dict[str, Any], *, now: datetime, bounds: TimeBounds | None) -> Event:
    """One minimal-schema JSON flow to a FLOW Event."""
    for key in _REQUIRED:  # report absence before any type or value problem, whatever the key order
        if obj.get(key) is None:
            raise ParseError(Reason.MISSING_FIELD, f"required field {key!r} is absent or null", field=key)
    ts = check_bounds(json_ts(obj["ts"]), now, bounds)
    duration_ms = get_float(obj, "duration_ms") or 0.0
    flags = _flags(obj)
    label = get_str(obj, "label")
    label = normalise_label(label) if label is not None else None
    return Event(
        kind=EventKind.FLOW,
        ts=ts,
        source="flow_json",
        src_ip=get_ip(obj, "src_ip", required=True),
        dst_ip=get_ip(obj, "dst_ip", required=True),
        src_port=get_int(obj, "src_port", hi=65535),
        dst_port=get_int(obj, "dst_port", required=True, hi=65535),
        protocol=_protocol(obj["protocol"]),
        duration_s=duration_ms / 1000.0,
        fwd_packets=get_int(obj, "fwd_packets", required=True),
        bwd_packets=get_int(obj, "bwd_packets") or 0,
        fwd_bytes=get_int(obj, "fwd_bytes", required=True),
        bwd_bytes=get_int(obj, "bwd_bytes") or 0,
        syn_count=flags["syn"],
        ack_count=flags["ack"],
        fin_count=flags["fin"],
        rst_count=flags["rst"],
        psh_count=flags["psh"],
        urg_count=flags["urg"],
        label=label or None,
    )
