"""Feature schema 1's entity states: lateness, snapshot/restore, packing, bounded memory (the store's reference)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from features.entities import entity_keys
from features.events import AuthOutcome, Event, EventKind
from features.extract import ROLE_FEATURES
from features.schema1 import EntityState, WindowStoreV1, role_features
from features.windows import WindowConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def fail(src: str, at_s: float, user: str = "root") -> Event:
    return Event(kind=EventKind.AUTH, ts=T0 + timedelta(seconds=at_s), source="sshd", src_ip=src, user=user,
                 auth_outcome=AuthOutcome.FAILURE, service="sshd")


def test_late_events_beyond_lateness_are_not_counted() -> None:
    state = EntityState("src", WindowConfig(allowed_lateness_ms=10_000))
    assert state.observe(fail("192.0.2.1", 100))
    assert state.observe(fail("192.0.2.1", 95))  # 5 s late: within lateness
    assert not state.observe(fail("192.0.2.1", 50))  # 50 s late: dropped
    assert state.late_events == 1
    assert state.failures.total(100_000 + T0_MS, 60_000) == 2


def test_snapshot_restore_round_trip_is_plain_data() -> None:
    store = WindowStoreV1()
    for s in range(0, 90, 2):
        store.observe(fail("203.0.113.9", s, user=f"user{s % 13}"))
    key = entity_keys(fail("203.0.113.9", 0))["src"]
    state = store.states[key]
    snap = json.loads(json.dumps(state.snapshot()))  # survives JSON, as a table changelog needs
    restored = EntityState.restore(snap)
    probe = fail("203.0.113.9", 91, user="other")
    state.observe(probe)
    restored.observe(probe)
    assert role_features("src", restored, probe) == role_features("src", state, probe)
    assert restored.snapshot() == state.snapshot()


def test_windows_an_entity_never_fills_stay_the_shared_empty_one() -> None:
    """An unused window costs nothing per entity: it is one shared read-only object until written."""
    flow = Event(kind=EventKind.FLOW, ts=T0, source="flow_json", src_ip="198.51.100.4", dst_ip="10.0.0.5",
                 dst_port=443, fwd_packets=3, fwd_bytes=200)
    a, b = EntityState("src"), EntityState("src")
    assert a.users is b.users and a.rt is b.rt  # shared before any event
    with pytest.raises(TypeError):
        a.users.add(0, "x")  # the shared one refuses writes
    a.observe(flow)
    assert a.flows is not b.flows and a.dst_ports is not b.dst_ports  # written: made real
    assert a.users is b.users and a.failures is b.failures and a.rt is b.rt  # untouched: still shared
    assert b.flows.total(T0.timestamp() * 1000, 60_000) == 0  # b did not see a's flow
    assert role_features("src", a, flow)[ROLE_FEATURES["src"].index("src_flows_1m")] == 1.0
    restored = EntityState.restore(json.loads(json.dumps(a.snapshot())))
    assert restored.users is b.users and restored.snapshot() == a.snapshot()
    later = Event(kind=EventKind.AUTH, ts=T0 + timedelta(seconds=5), source="sshd", src_ip="198.51.100.4",
                  user="root", auth_outcome=AuthOutcome.FAILURE)
    restored.observe(later)  # a restored state still makes windows real on first write
    assert restored.users is not b.users and restored.users.count(T0.timestamp() * 1000 + 5000) == 1


def test_packed_state_round_trips_and_is_small() -> None:
    store = WindowStoreV1()
    for s in range(0, 90, 2):
        store.observe(fail("203.0.113.9", s, user=f"user{s % 13}"))
    state = store.states[entity_keys(fail("203.0.113.9", 0))["src"]]
    state.mark_applied("hops:1", 123_456_789)
    packed = state.pack()
    cfg = WindowConfig(allowed_lateness_ms=60_000, idle_ttl_ms=120_000)
    back = EntityState.unpack(packed, cfg)
    assert back.snapshot() == state.snapshot() and back.cfg is cfg  # the worker's settings, not defaults
    assert EntityState.peek(packed) == ("src", state.last_seen_ms)
    probe = fail("203.0.113.9", 91, user="other")
    state.observe(probe)
    back.observe(probe)
    assert role_features("src", back, probe) == role_features("src", state, probe)
    # A changelog written before packing holds plain JSON snapshots: still readable.
    legacy = json.dumps(state.snapshot()).encode()
    assert EntityState.unpack(legacy).snapshot() == state.snapshot()
    assert EntityState.peek(legacy) == ("src", state.last_seen_ms)
    # Empty windows are not written: a flow-only source packs to a few hundred bytes.
    flow = Event(kind=EventKind.FLOW, ts=T0, source="flow_json", src_ip="198.51.100.4", dst_ip="10.0.0.5",
                 dst_port=443, fwd_packets=3, fwd_bytes=200)
    src = EntityState("src")
    src.observe(flow)
    assert len(src.pack()) < 400
    assert EntityState.unpack(src.pack()).users is EntityState("src").users  # still the shared empty one


@pytest.mark.parametrize("junk", [b"", b"\x00", b"\x02" + b"x" * 20, b"\x01" + b"\x00" * 10 + b"{not json", b"[1, 2]"])
def test_unpacking_junk_raises_a_clear_error(junk: bytes) -> None:
    with pytest.raises(ValueError):
        EntityState.unpack(junk)


def test_a_flooding_client_state_is_bounded_by_construction() -> None:
    """Every window of a source filled past its cap with 2 KB values: the packed state stays well under 1 MiB."""
    state = EntityState("src")
    t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
    for i in range(3 * state.cfg.distinct_cap):
        state.observe(Event(kind=EventKind.HTTP, ts=t0 + timedelta(milliseconds=20 * i), source="access_log",
                            src_ip="203.0.113.66", user=f"u{i}" + "u" * 2000, method="GET",
                            path=f"/{i}/" + "p" * 2040, status=404, response_bytes=1, dst_ip=f"10.{i // 65536}."
                            f"{i // 256 % 256}.{i % 256}", dst_port=i % 65536, response_time_ms=float(i)))
    for name in ("users", "paths", "dst_ips", "dst_ports"):
        assert len(getattr(state, name)) <= state.cfg.distinct_cap
    size = len(state.pack())
    assert size < 600_000, size  # measured: 4.4 MB for 2,000 such requests when values were kept verbatim


