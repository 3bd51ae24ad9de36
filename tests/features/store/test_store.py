"""The compiled window store (feature schemas 2 and 3) against today's `WindowStore`, and its own guarantees."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import numpy as np
import pytest

from features.entities import entity_keys
from features.events import Event
from features.extract import FEATURE_NAMES, ROLE_FEATURES
from features.parsing import parse_line
from features.schema1 import SCHEMA1_FEATURES
from features.schema1 import WindowStoreV1 as WindowStore
from features.simulation import ScenarioConfig, generate
from features.store import Batch, WindowStoreV2, batch_from_events
from features.store.layout import SERIES
from features.windows import WindowConfig

ROLE_NAMES = [f for role in ("src", "dst", "user", "service") for f in ROLE_FEATURES[role]]  # the store's columns
NAMES = list(SCHEMA1_FEATURES)  # the role features schema 1 computes (not schema 3's web ones)
COLS = [FEATURE_NAMES.index(f) for f in NAMES]
V2COLS = [ROLE_NAMES.index(f) for f in NAMES]
# Distinct features: (feature, role, v1 window attribute, span read, v2 bucket width).
DISTINCT = {
    "src_distinct_users_10m": ("src", "users", 600_000, 10_000),
    "src_distinct_paths_1m": ("src", "paths", 60_000, 1_000),
    "src_distinct_dst_ports_1m": ("src", "dst_ports", 60_000, 1_000),
    "src_distinct_dst_ips_1m": ("src", "dst_ips", 60_000, 1_000),
    "dst_distinct_srcs_1m": ("dst", "srcs", 60_000, 1_000),
    "user_distinct_srcs_10m": ("user", "srcs", 600_000, 10_000),
}


@cache
def held_out_events(seed: int = 101, duration_s: float = 300.0) -> tuple[Event, ...]:
    """A held-out generator seed's events in event-time order (training uses seeds 0-3)."""
    now = datetime.now(UTC)
    raws = generate(ScenarioConfig(seed=seed, duration_s=duration_s))
    return tuple(sorted((parse_line(r.payload, now=now, bounds=None) for r in raws), key=lambda e: e.ts))


def run_v2(events, store: WindowStoreV2 | None = None, batch: int = 1000, sweep: bool = False) -> np.ndarray:
    store = store or WindowStoreV2()
    out = []
    for lo in range(0, len(events), batch):
        part = events[lo:lo + batch]
        out.append(store.observe(batch_from_events(part)))
        if sweep:
            store.sweep(part[-1].ts_ms)
    return np.vstack(out)


@cache
def reference() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Today's features, and each distinct feature's count over the span less one bucket, for in-order events."""
    events = held_out_events()
    store = WindowStore()
    rows, lower, in_order = [], np.zeros((len(events), len(DISTINCT))), np.zeros(len(events), bool)
    for i, e in enumerate(events):
        rows.append(store.observe(e))
        keys = entity_keys(e)
        ok = True
        for j, (role, attr, span, width) in enumerate(DISTINCT.values()):
            state = store.states.get(keys.get(role, ""))
            if state is None:
                continue
            ok &= state.watermark_ms == e.ts_ms
            lower[i, j] = getattr(state, attr).count(max(e.ts_ms, 0), span - width)
        in_order[i] = ok
    return np.asarray(rows)[:, COLS], lower, in_order


def test_counts_and_sums_match_todays_store_exactly_on_a_held_out_seed() -> None:
    ref, _, _ = reference()
    got = run_v2(held_out_events())[:, V2COLS]
    assert len(got) > 10_000
    for j, name in enumerate(NAMES):
        if name in DISTINCT:
            continue
        same = np.isclose(got[:, j], ref[:, j], rtol=1e-12, atol=1e-9)
        assert same.all(), f"{name}: {int((~same).sum())} events differ, e.g. {got[~same][:3, j]} vs {ref[~same][:3, j]}"
        assert ref[:, j].any(), f"{name} is zero on every event: the comparison would prove nothing"


def test_distinct_counts_differ_only_by_the_bucket_the_window_starts_in() -> None:
    """v2 counts a value by its last sighting's bucket: between today's count over (span - width) and over span."""
    ref, lower, in_order = reference()
    got = run_v2(held_out_events())[:, V2COLS]
    assert in_order.mean() > 0.9
    exact = {}
    for j, name in enumerate(DISTINCT):
        col = NAMES.index(name)
        v1, v2, lo = ref[in_order, col], got[in_order, col], lower[in_order, j]
        assert (v2 <= v1).all(), f"{name}: v2 above today's count"
        assert (v2 >= lo).all(), f"{name}: v2 below today's count over the span less one bucket"
        exact[name] = float(np.mean(v1 == v2))
    assert min(exact.values()) > 0.9, exact
    assert ref[:, [NAMES.index(n) for n in DISTINCT]].max() > 5  # the workload does exercise them


def test_snapshot_and_restore_continue_exactly_where_the_store_was() -> None:
    events = held_out_events()
    whole = run_v2(events)
    half = len(events) // 2
    first = WindowStoreV2()
    a = run_v2(events[:half], first)
    restored = WindowStoreV2.restore(first.snapshot())
    b = run_v2(events[half:], restored)
    assert np.array_equal(np.vstack([a, b]), whole)
    assert restored.stats().entities == len(restored.ids)


def test_sweeping_every_batch_drops_only_what_no_read_reaches() -> None:
    events = held_out_events()
    store = WindowStoreV2()
    swept = run_v2(events, store, sweep=True)
    assert np.array_equal(swept, run_v2(events))
    # Pruned as it went: fewer chunks than a store that never swept holds.
    never = WindowStoreV2()
    run_v2(events, never)
    assert store.stats().buckets < never.stats().buckets


def test_idle_entities_are_dropped_and_start_again_from_nothing() -> None:
    events = list(held_out_events()[:2000])
    store = WindowStoreV2()
    first = store.observe(batch_from_events(events))
    n = len(store.ids)
    assert store.sweep(events[-1].ts_ms) == 0
    later = events[-1].ts_ms + store.cfg.idle_ttl_ms + 1
    assert store.sweep(later) == n
    assert store.ids == {} and store.stats().buckets == 0 and store.stats().values == 0
    # The same events again, as new: the same features as the first time round.
    assert np.array_equal(store.observe(batch_from_events(events)), first)
    assert len(store.ids) == n and max(store.ids.values()) < n  # the freed ids were reused


def _scan(n_ports: int, start_ms: int = 1_767_600_000_000, step_ms: int = 5) -> Batch:
    """One source probing `n_ports` distinct ports of one host, `step_ms` apart."""
    n = n_ports
    values = np.zeros((6, n), np.int64)
    values[1] = np.arange(1, n + 1)
    values[2] = 99
    values[4] = 7
    return Batch(ts=start_ms + np.arange(n, dtype=np.int64) * step_ms,
                 keys=[["src:198.51.100.9"] * n, ["dst:192.0.2.1"] * n, [None] * n, [None] * n],
                 fail=np.zeros(n, np.int8), status=np.full(n, -1, np.int32), err=np.zeros(n, np.int8),
                 atk=np.zeros(n, np.int8), sens=np.zeros(n, np.int8), rt=np.full(n, np.nan), flow=np.ones(n, np.int8),
                 packets=np.full(n, 2.0), bytes=np.full(n, 120.0), values=values)


def test_a_port_scan_is_capped_and_its_state_stays_bounded() -> None:
    cfg = WindowConfig(distinct_cap=256)
    store = WindowStoreV2(cfg)
    ports = ROLE_NAMES.index("src_distinct_dst_ports_1m")
    for k in range(10):
        batch = _scan(1000, start_ms=1_767_600_000_000 + k * 5_000)
        batch.values[1] += k * 1000  # new ports each batch
        out = store.observe(batch)
        assert out[:, ports].max() <= cfg.distinct_cap
        assert store.ndist.max() <= cfg.distinct_cap + 1024
    assert out[-1, ports] == cfg.distinct_cap  # still scanning: still saturated, not decayed
    assert store.stats().values <= 2 * (cfg.distinct_cap + 1024)


def test_keys_written_by_clients_survive_a_snapshot_byte_for_byte() -> None:
    events = list(held_out_events()[:50])
    hostile = ["user:root\x00", "user:\udcff\u202e", "user:" + "a" * 5000, "src:\x00"]
    store = WindowStoreV2()
    store.observe(batch_from_events(events))
    batch = batch_from_events(events[:4])
    batch.keys = [list(hostile), [None] * 4, [None] * 4, [None] * 4]
    store.observe(batch)
    restored = WindowStoreV2.restore(store.snapshot())
    assert restored.ids == store.ids
    assert all(k in restored.ids for k in hostile)


def test_restore_refuses_a_snapshot_taken_with_another_lateness() -> None:
    store = WindowStoreV2(WindowConfig(allowed_lateness_ms=60_000))
    store.observe(batch_from_events(list(held_out_events()[:100])))
    with pytest.raises(ValueError, match="lateness"):
        WindowStoreV2.restore(store.snapshot(), WindowConfig(allowed_lateness_ms=300_000))


def test_layout_and_kernel_agree_on_the_series() -> None:
    from features.store import kernel

    names = [s.name for s in SERIES]
    assert names.index("src_users") == kernel.SRC_USERS and names.index("service_rt_sumsq") == kernel.SVC_RT_SS
    assert [i for i, s in enumerate(SERIES) if s.distinct] == [i for i, d in enumerate(kernel.DSLOT) if d >= 0]


def test_an_event_older_than_its_entitys_latest_counts_its_own_distinct_value() -> None:
    """A late event reads values seen up to its entity's latest event: its own value, sighted later, counts."""
    import orjson

    def flow(ts: str, src: str, dst: str, port: int) -> Event:
        return parse_line(orjson.dumps({"ts": ts, "src_ip": src, "dst_ip": dst, "dst_port": port, "protocol": "tcp",
                                        "fwd_packets": 3, "fwd_bytes": 200}), now=datetime.now(UTC), bounds=None)

    ports, srcs = ROLE_NAMES.index("src_distinct_dst_ports_1m"), ROLE_NAMES.index("dst_distinct_srcs_1m")
    store = WindowStoreV2()
    in_order = [flow("2026-01-05T09:00:10Z", "198.51.100.4", "10.0.0.5", 22),
                flow("2026-01-05T09:00:20Z", "198.51.100.4", "10.0.0.5", 22),
                flow("2026-01-05T09:00:21Z", "198.51.100.7", "10.0.0.5", 23)]
    store.observe(batch_from_events(in_order))
    # 09:00:15 arrives last: its source's port 22 and its destination's source .4 were last seen at :20.
    late = store.observe(batch_from_events([flow("2026-01-05T09:00:15Z", "198.51.100.4", "10.0.0.5", 22)]))
    assert late[0, ports] == 1  # was 0: the port's only sighting kept (:20) lies after :15
    assert late[0, srcs] == 2  # .4 (sighted :20) and .7 (sighted :21, after :15: counted up to the latest)
