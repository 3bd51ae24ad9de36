"""Ingest without a broker: raw input to the first hop, or to a dead letter."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

from features.events import event_from_dict
from features.store import check_inputs, kernel_inputs
from streams.agents.ingest import Ingested
from streams.internal import decode, encode, hop_event
from streams.wire import MAX_DEADLETTER_BYTES, DeadLetter
from tests.streams.agents.helpers import NOW, flow, ingest_at, ingested, sshd_failure

# --- ingest: dead letters ------------------------------------------------------------------------

_FUTURE = (NOW + timedelta(days=400)).isoformat()


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("logs", None, "empty"),
        ("logs", b"\xff\xfe\x00\x81junk\xc3(", "not_utf8"),
        ("flows", b'{"ts": "2026-01-05T09:00:00Z", "src_ip": "198.5', "bad_json"),
        ("flows", flow(src_ip="999.1.2.3"), "bad_ip"),
        ("flows", flow(ts=_FUTURE), "time_out_of_range"),
    ],
    ids=["none", "binary", "truncated-json", "bad-ip", "far-future"],
)
def test_ingest_refuses_bad_input_with_a_dead_letter(kind: str, raw: bytes | None, reason: str) -> None:
    out = ingest_at(raw, kind=kind, topic=f"{kind}.raw", partition=3, offset=1234)
    assert isinstance(out, DeadLetter)
    assert out.reason == reason
    assert out.error
    assert (out.source_topic, out.source_partition, out.source_offset) == (f"{kind}.raw", 3, 1234)
    original = raw or b""
    assert base64.b64decode(out.original_b64) == original
    assert out.original_size == len(original)
    assert out.original_sha256 == hashlib.sha256(original).hexdigest()
    assert out.truncated is False
    assert out.received_at_ms == int(NOW.timestamp() * 1000)
    DeadLetter.model_validate_json(out.model_dump_json())  # what the agent sends is a valid record


def test_ingest_cuts_a_huge_message_but_says_what_arrived() -> None:
    raw = b"".join(b"%07d\n" % i for i in range(262_144))  # 2 MiB, no two 8-byte lines alike
    assert len(raw) == 2 * 1024 * 1024
    out = ingest_at(raw, kind="logs", topic="logs.raw", partition=1, offset=7)
    assert isinstance(out, DeadLetter)
    assert out.reason == "too_large"
    assert (out.source_topic, out.source_partition, out.source_offset) == ("logs.raw", 1, 7)
    assert out.original_size == len(raw)
    assert out.truncated is True
    kept = base64.b64decode(out.original_b64)
    assert MAX_DEADLETTER_BYTES == 256 * 1024
    assert kept == raw[: 256 * 1024]
    assert out.original_sha256 == hashlib.sha256(raw).hexdigest()


def test_ingest_does_not_raise_on_odd_input() -> None:
    for raw in (b"", b"   ", b"[]", b"42", b"{}", b"\x00" * 10, "é".encode() * 10):
        for kind in ("logs", "flows"):
            assert isinstance(ingest_at(raw, kind=kind), (Ingested, DeadLetter))


# --- ingest: good input ------------------------------------------------------------------------


def test_ingest_sshd_line_starts_at_the_source_entity() -> None:
    out = ingested(sshd_failure(1), kind="logs", topic="logs", partition=2, offset=40)
    msg = out.hop.message
    assert out.hop.key == b"src:203.0.113.7"
    assert msg["route"] == [["src", "src:203.0.113.7"], ["user", "user:root"]]
    assert msg["src"] == ["logs:2", 40]
    assert msg["id"] == out.event_id
    assert msg["i"] == 0 and msg["parts"] == {}
    ev = hop_event(msg)
    assert ev["src_ip"] == "203.0.113.7" and ev["user"] == "root"
    assert msg["ts"] == ev["ts"]
    # The windows' inputs travel with the hop, the same as training computes them from the event.
    assert msg["k"] == kernel_inputs(event_from_dict(ev)) and msg["k"][0] == 1  # an authentication failure
    assert check_inputs(msg["k"]) == msg["k"]
    assert msg["in"] == int(NOW.timestamp() * 1000)
    assert decode(encode(msg)) == msg  # the hop message survives the wire encoding unchanged


def test_a_hop_from_a_schema_2_worker_is_read_as_one_without_web_inputs() -> None:
    """Hops a worker left on the topic before the schema-3 upgrade still count; bad web inputs are refused."""
    k = ingested(sshd_failure(1), kind="logs", topic="logs", partition=2, offset=40).hop.message["k"]
    assert len(k) == 15 and k[13:] == [0, 0]  # an sshd line asks for no path
    assert check_inputs(k[:13]) == k
    for bad in (k[:13] + [1], k[:13] + [2, 0], k[:13] + [True, 0], k[:13] + [0, -5], k[:13] + [0, 1 << 63]):
        with pytest.raises(ValueError):
            check_inputs(bad)


def test_ingest_flow_visits_source_then_destination() -> None:
    out = ingested(flow(), kind="flows", topic="flows", partition=1, offset=2)
    assert out.hop.key == b"src:198.51.100.4"
    assert out.hop.message["route"] == [["src", "src:198.51.100.4"], ["dst", "dst:10.0.0.5"]]
    assert out.hop.message["src"] == ["flows:1", 2]


def test_event_id_is_deterministic_from_the_input_position() -> None:
    first = ingested(sshd_failure(1), topic="logs", partition=0, offset=5)
    # Redelivered later (another clock), the same input position gives the same id.
    again = ingested(sshd_failure(1), topic="logs", partition=0, offset=5, now=NOW + timedelta(minutes=3))
    assert again.event_id == first.event_id
    assert len(first.event_id) == 32
    others = {
        ingested(sshd_failure(1), topic="logs", partition=0, offset=6).event_id,
        ingested(sshd_failure(1), topic="logs", partition=1, offset=5).event_id,
        ingested(sshd_failure(1), topic="logs.other", partition=0, offset=5).event_id,
    }
    assert first.event_id not in others and len(others) == 3
