"""Labelled live rows: who says what a sampled row was, and how much of it is kept."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from scoring.live import LiveRow, LiveRows, canonical_source

_W = len(FEATURE_NAMES)


def _row(event_id: str, source: str, label: str = "benign", *, flagged: bool = False, ts: int = 0,
         value: float = 0.0) -> LiveRow:
    return LiveRow(event_id, ts, source, label, 90 if flagged else 5, flagged, np.full(_W, value))


def _labels(live: LiveRows) -> dict[float, str]:
    x, y, _ = live.dataset()
    return {float(r[0]): str(lab) for r, lab in zip(x, y)}


def test_each_source_of_a_label_and_its_precedence() -> None:
    live = LiveRows()
    rows = [
        _row("e1", "198.51.100.1", "brute_force", flagged=True, value=1),  # blocked: its verdict
        _row("e2", "198.51.100.2", "brute_force", flagged=True, value=2),  # blocked, then unblocked: benign
        _row("e3", "198.51.100.3", "port_scan", flagged=True, value=3),  # flagged, nobody acted: unused
        _row("e4", "198.51.100.4", value=4),  # quiet source: benign
        _row("e5", "198.51.100.3", value=5),  # a quiet row of a flagged source: unused
        _row("e6", "198.51.100.1", value=6),  # a quiet row of a blocked source: unused
        _row("e7", "198.51.100.7", "xss", flagged=True, value=7),  # blocked, but the analyst says benign
        _row("e8", "198.51.100.8", value=8),  # quiet, but the analyst labels the source
        _row("e9", "198.51.100.8", value=9),  # ... and this one event otherwise
        _row("e10", "10.1.2.3", "ddos", flagged=True, value=10),  # blocked, then its network allowlisted
    ]
    for r in rows:
        assert live.offer(r, FEATURE_SCHEMA_VERSION)
    for src in ("198.51.100.1", "198.51.100.2", "198.51.100.7", "10.1.2.3"):
        live.blocked(src)
    live.undone("::ffff:198.51.100.2")  # another spelling of the same address
    live.undone_network(ipaddress.ip_network("10.1.0.0/16"))
    live.label_source("198.51.100.7", "benign")
    live.label_source("198.51.100.8", "web_scan")
    live.label_event("e9", "sql_injection")
    assert _labels(live) == {1.0: "brute_force", 2.0: "benign", 4.0: "benign", 7.0: "benign", 8.0: "web_scan",
                             9.0: "sql_injection", 10.0: "benign"}


def test_a_benign_verdict_never_becomes_an_attack_label() -> None:
    live = LiveRows()
    live.offer(_row("e1", "198.51.100.1", "benign", flagged=True, value=1), FEATURE_SCHEMA_VERSION)
    live.blocked("198.51.100.1")
    assert _labels(live) == {}


def test_rows_of_another_schema_or_shape_are_refused_and_counted() -> None:
    live = LiveRows()
    assert not live.offer(_row("e1", "198.51.100.1"), "2")
    assert not live.offer(LiveRow("e2", 0, "198.51.100.1", "benign", 5, False, np.zeros(_W - 1)),
                          FEATURE_SCHEMA_VERSION)
    bad = np.zeros(_W)
    bad[3] = np.nan
    assert not live.offer(LiveRow("e3", 0, "198.51.100.1", "benign", 5, False, bad), FEATURE_SCHEMA_VERSION)
    assert live.refused == {"feature_schema": 1, "width": 1, "not_finite": 1}
    assert len(live) == 0


def test_per_label_cap_keeps_an_even_spread_in_time_order() -> None:
    live = LiveRows(per_label=10)
    for i in range(100):
        live.offer(_row(f"e{i}", f"198.51.100.{i % 50}", ts=i, value=i), FEATURE_SCHEMA_VERSION)
    x, y, counts = live.dataset()
    assert counts == {"benign": 10}
    kept = x[:, 0].tolist()
    assert kept == sorted(kept) and kept[0] == 0 and kept[-1] == 99  # first to last, not the first ten


def test_memory_is_bounded_whatever_arrives() -> None:
    live = LiveRows(per_label=5, max_sources=100)
    for i in range(10_000):
        live.offer(_row(f"e{i}", f"10.0.{i // 256 % 256}.{i % 256}", "ddos", flagged=i % 2 == 0, ts=i),
                   FEATURE_SCHEMA_VERSION)
        live.blocked(f"10.0.{i // 256 % 256}.{i % 256}")
        live.label_event(f"e{i}", "ddos")
    assert len(live) == live.capacity == 60
    assert len(live._blocked) == len(live._by_event) == len(live._flagged) == 100
    # The reservoir sampled the whole run, not its start.
    assert max(r.ts_ms for r in live._rows) > 5_000


@pytest.mark.parametrize("spelling, canonical", [
    ("::ffff:10.0.0.1", "10.0.0.1"), ("::FFFF:10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1"),
    ("10.0.0.1", "10.0.0.1"), ("web-01", "web-01"),
])
def test_addresses_are_compared_in_one_spelling(spelling: str, canonical: str) -> None:
    assert canonical_source(spelling) == canonical
