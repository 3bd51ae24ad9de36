"""PSI drift: stable on the same distribution, high on a shifted one, robust to zeros and junk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.drift import DriftMonitor, psi, reference_from

NAMES = ["failed_logins", "bytes", "constant"]


def _rows(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> np.ndarray:
    fails = np.where(rng.random(n) < 0.9, 0.0, rng.poisson(3 + shift * 10, n))  # mostly zero, like window counts
    bytes_ = rng.lognormal(8 + shift, 1.0, n)
    return np.column_stack([fails, bytes_, np.zeros(n)])


def test_same_distribution_is_stable_and_a_shift_is_not() -> None:
    rng = np.random.default_rng(0)
    ref = reference_from(_rows(rng, 20_000), NAMES)
    json.dumps(ref)  # plain data: it travels in the bundle's metadata
    same = DriftMonitor(ref, NAMES, window=5000).observe(_rows(rng, 5000))
    assert same is not None and max(same.values()) < 0.05
    shifted = DriftMonitor(ref, NAMES, window=5000).observe(_rows(rng, 5000, shift=1.5))
    assert shifted is not None and shifted["bytes"] > 0.25 and shifted["failed_logins"] > 0.1
    assert shifted["constant"] < 0.01
    assert DriftMonitor.worst(shifted)[0] == "bytes"


def test_windows_tumble_and_only_complete_windows_report() -> None:
    rng = np.random.default_rng(1)
    ref = reference_from(_rows(rng, 5000), NAMES)
    mon = DriftMonitor(ref, NAMES, window=1000)
    assert mon.observe(_rows(rng, 600)) is None
    first = mon.observe(_rows(rng, 600))
    assert first is not None and mon.seen == 0 and mon.last == first and mon.completed == 1
    assert mon.observe(np.empty((0, 3))) is None


def test_columns_are_matched_by_name() -> None:
    rng = np.random.default_rng(2)
    ref = reference_from(_rows(rng, 5000), NAMES)
    x = _rows(rng, 2000)
    wider = ["extra", *NAMES]
    a = DriftMonitor(ref, NAMES, window=2000).observe(x)
    b = DriftMonitor(ref, wider, window=2000).observe(np.column_stack([np.full(len(x), 7.0), x]))
    assert a == b


def test_nan_and_infinity_are_counted_not_fatal() -> None:
    rng = np.random.default_rng(3)
    ref = reference_from(_rows(rng, 5000), NAMES)
    x = _rows(rng, 1000)
    x[::7, 1] = np.nan
    x[::11, 0] = np.inf
    out = DriftMonitor(ref, NAMES, window=1000).observe(x)
    assert out is not None and all(np.isfinite(v) for v in out.values())


def test_psi_edge_cases() -> None:
    assert psi([0.5, 0.5], [0, 0]) == 0.0
    assert psi([0.5, 0.5], [50, 50]) == pytest.approx(0.0)
    assert psi([1.0, 0.0], [0, 100]) > 5
    with pytest.raises(ValueError):
        reference_from(np.zeros((3, 2)), NAMES)


def test_overall_is_the_mean_over_features() -> None:
    assert DriftMonitor.overall({"a": 0.1, "b": 0.3}) == pytest.approx(0.2)
    assert DriftMonitor.overall({}) == 0.0
