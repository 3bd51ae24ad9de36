"""Fuzzing the parsers: any bytes give an Event or a typed ParseError, and never through the safety net.

`parse_log`/`parse_flow` turn an unexpected exception into ParseError("unparseable input (...)")
so that a parser bug costs one event, not the stream. These tests fail when that net catches
anything: every refusal must be a parser's own decision, with its own reason. What parses
must be sane: times in bounds, finite non-negative counts, JSON-ready.
"""

from __future__ import annotations

import json
import math
import string
from datetime import UTC, datetime
from pathlib import Path

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from features.errors import ParseError
from features.events import Event, event_from_dict
from features.parsing import TimeBounds, parse_flow, parse_log

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
BOUNDS = TimeBounds()
DATA = Path(__file__).resolve().parents[1] / "data" / "cicids2017"

SEEDS_LOG = [
    b"Dec 10 06:55:46 gate sshd[24200]: Failed password for invalid user webmaster from 198.51.100.186 port 38926 ssh2",
    b"Jan  5 09:00:01 bastion sshd[100]: Accepted publickey for deploy from 10.0.0.7 port 51000 ssh2",
    b'203.0.113.9 - - [23/Nov/2026:11:59:01 +0000] "GET /search?q=%27+OR+1%3D1-- HTTP/1.1" 200 512 "-" "curl/8.0"',
    b'{"ts": "2026-11-23T11:59:00Z", "level": "error", "service": "api", "message": "timeout", "response_time_ms": 812,'
    b' "status": 504}',
]
SEEDS_FLOW = [
    b'{"ts": 1795435140000, "src_ip": "198.51.100.4", "src_port": 40000, "dst_ip": "10.0.0.5", "dst_port": 443, '
    b'"protocol": "tcp", "fwd_packets": 3, "fwd_bytes": 200, "flags": {"syn": 1}}',
    (DATA / "ddos_part1_head40.csv").read_bytes().split(b"\n")[3].rstrip(b"\r"),
    (DATA / "thursday_benign_head40.csv").read_bytes().split(b"\n")[3].rstrip(b"\r"),
]
FIELDS = ["ts", "timestamp", "@timestamp", "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol",
          "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "duration_ms", "flags", "level", "service",
          "message", "msg", "response_time_ms", "status", "user", "host", "path", "method", "log", "kind"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
    | st.sampled_from(["10.0.0.1", "::1", "999.1.1.1", "2026-11-23T11:59:00Z", "tcp", "error", "-1", "1e999"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=12).map(
    lambda d: json.dumps(d, allow_nan=True).encode())  # json, not orjson: NaN/Infinity on the wire too


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real line with a few random edits: cut, overwrite, insert or duplicate."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "write", "insert", "dup"]))
        chunk = draw(st.binary(min_size=1, max_size=6) | st.sampled_from(
            [b",", b'"', b"{", b"}", b":", b" ", b"\x00", b"\xff", b"-1", b"NaN", b"Infinity", b"99999999999999999999"]))
        if op == "cut":
            del data[at:]
        elif op == "write":
            data[at:at + len(chunk)] = chunk
        elif op == "insert":
            data[at:at] = chunk
        else:
            data[at:at] = data[max(0, at - 8):at]
    return bytes(data)


@st.composite
def json_mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real JSON event with fields dropped, retyped, changed or added: valid JSON, odd content."""
    obj = json.loads(draw(st.sampled_from([s for s in seeds if s.startswith(b"{")])))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(obj) + FIELDS))
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = draw(json_values)
    return json.dumps(obj, allow_nan=True).encode()


csv_rows = st.lists(st.text(alphabet=string.digits + ".-eE,InfinityNaN ", max_size=12), min_size=1, max_size=90).map(
    lambda cells: ",".join(cells).encode())
anything = st.binary(max_size=300) | st.text(max_size=300).map(str.encode) | json_objects | csv_rows


def _check(parse, raw: bytes) -> None:
    try:
        ev = parse(raw, now=NOW, bounds=BOUNDS)
    except ParseError as exc:
        assert not exc.detail.startswith("unparseable input ("), f"a parser raised past its own checks: {exc}"
        return
    assert isinstance(ev, Event)
    assert BOUNDS.not_before <= ev.ts <= NOW + BOUNDS.max_future
    for name in ("fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "duration_ms", "response_time_ms"):
        value = getattr(ev, name, None)
        assert value is None or (math.isfinite(value) and value >= 0), (name, value)
    for port in (ev.src_port, ev.dst_port):
        assert port is None or 0 <= port <= 65535
    data = ev.to_dict()
    assert event_from_dict(orjson.loads(orjson.dumps(data))).to_dict() == data  # what passes survives the wire


@given(anything | mutated(SEEDS_LOG) | mutated(SEEDS_FLOW) | json_mutated(SEEDS_LOG))
@example(b'{"ts": NaN, "src_ip": "10.0.0.1"}')
@example(b'{"ts": 1e400}')
@example(b"Dec 10 06:55:46 gate sshd[1]: Failed password for root from 1.2.3.4 port 99999999999999999999 ssh2")
def test_any_log_input_parses_or_is_refused_with_a_reason(raw: bytes) -> None:
    _check(parse_log, raw)


@given(anything | mutated(SEEDS_FLOW) | mutated(SEEDS_LOG) | json_mutated(SEEDS_FLOW))
@example(b'{"ts": 1795435140000, "src_ip": "1.2.3.4", "dst_ip": "5.6.7.8", "dst_port": 80, "protocol": "tcp", '
         b'"fwd_packets": 1e308, "fwd_bytes": 1e308}')
def test_any_flow_input_parses_or_is_refused_with_a_reason(raw: bytes) -> None:
    _check(parse_flow, raw)
