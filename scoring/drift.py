"""Feature drift: population stability index (PSI) of live features against the training data.

At training time `reference_from` bins every feature by the training rows' deciles (and the
deciles of its non-zero values) and keeps the share of rows per bin; the reference travels in
the bundle's metadata. A `DriftMonitor`
counts live rows into the same bins and, once it has seen a window of rows, gives the PSI per
feature: sum over bins of (live - ref) * ln(live / ref). Rule of thumb: < 0.1 stable,
0.1-0.25 moderate, > 0.25 a shift worth retraining for.

The drift signal is the mean PSI over features (`overall`): one window feature alone swings
with every attack burst (on the scenario generator, single-feature PSI between two normal
captures reaches 0.3-0.7 while the mean stays at 0.04-0.12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DriftMonitor", "psi", "reference_from"]

_EPS = 1e-4  # floor for empty bins, so ln() stays finite


def _edges(column: np.ndarray, bins: int) -> np.ndarray:
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return np.empty(0)
    probs = np.linspace(0, 1, bins + 1)[1:-1]
    qs = [np.quantile(finite, probs)]
    # Window counts are mostly zero: deciles of all rows would put every non-zero value in one
    # bin and hide a shift among them, so the non-zero values get deciles of their own.
    nonzero = finite[finite != 0]
    if nonzero.size:
        qs.append(np.quantile(nonzero, probs))
    return np.unique(np.concatenate(qs))


def _counts(column: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Bin i holds values in (edges[i-1], edges[i]]; NaN/inf go to the last bin (NaN sorts last).
    idx = np.searchsorted(edges, column, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)[: len(edges) + 1]


def reference_from(x: np.ndarray, names: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """Decile bins and per-bin shares of every feature column of the training rows (plain data)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"expected rows of {len(names)} features, got shape {x.shape}")
    features = {}
    for j, name in enumerate(names):
        edges = _edges(x[:, j], bins)
        counts = _counts(x[:, j], edges)
        features[name] = {"edges": edges.tolist(), "p": (counts / max(len(x), 1)).tolist()}
    return {"bins": bins, "rows": int(len(x)), "features": features}


def psi(expected: Sequence[float], actual_counts: Sequence[float]) -> float:
    """PSI of observed counts against expected shares over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPS)
    a = np.asarray(actual_counts, dtype=np.float64)
    total = a.sum()
    if total <= 0:
        return 0.0
    a = np.maximum(a / total, _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftMonitor:
    """Counts live rows into the reference's bins; PSI per feature over tumbling windows of rows."""

    def __init__(self, reference: Mapping[str, Any], columns: Sequence[str], *, window: int = 5000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        feats = reference["features"]
        self.names = [n for n in columns if n in feats]
        self._cols = [list(columns).index(n) for n in self.names]
        self._edges = [np.asarray(feats[n]["edges"], dtype=np.float64) for n in self.names]
        self._ref = [np.asarray(feats[n]["p"], dtype=np.float64) for n in self.names]
        self.window = window
        self._counts = [np.zeros(len(e) + 1, dtype=np.int64) for e in self._edges]
        self.seen = 0
        self.completed = 0  # full windows so far
        self.last: dict[str, float] | None = None  # PSI per feature of the last full window

    def observe(self, x: np.ndarray) -> dict[str, float] | None:
        """Count rows (full feature vectors in `columns` order); the PSI per feature when a window completes."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return None
        for k, col in enumerate(self._cols):
            self._counts[k] += _counts(x[:, col], self._edges[k])
        self.seen += len(x)
        if self.seen < self.window:
            return None
        self.last = {n: psi(self._ref[k], self._counts[k]) for k, n in enumerate(self.names)}
        self.completed += 1
        for c in self._counts:
            c[:] = 0
        self.seen = 0
        return self.last

    @staticmethod
    def overall(by_feature: Mapping[str, float]) -> float:
        """The drift signal: mean PSI over features."""
        return float(np.mean(list(by_feature.values()))) if by_feature else 0.0

    @staticmethod
    def worst(by_feature: Mapping[str, float]) -> tuple[str, float]:
        """The feature with the largest PSI, and that PSI."""
        if not by_feature:
            return "", 0.0
        name = max(by_feature, key=lambda n: by_feature[n])
        return name, by_feature[name]
