"""Models, batch scoring, risk and explanations, training and evaluation. Imports `features` only.

The names below load on first use (PEP 562): importing `scoring.healing` or `scoring.errors`
must not import scikit-learn, which costs seconds, for CLI commands that never score.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DETECTORS": "anomaly", "CalibratedAnomalyModel": "anomaly",
    "ScoreResult": "batch", "score_batch": "batch",
    "BatchScores": "bundle", "ModelBundle": "bundle", "load_bundle": "bundle", "severity_for": "bundle",
    "Comparison": "challenger", "ab_share": "challenger", "compare": "challenger", "served_by_challenger": "challenger",
    "check_bundle": "conformance",
    "DriftMonitor": "drift", "psi": "drift", "reference_from": "drift",
    "BundleError": "errors", "ConformanceError": "errors", "ScoringError": "errors",
    "explain": "explain",
    "TrainParams": "train", "evaluate": "train", "promotion_gate": "train", "train_bundle": "train",
}


def __getattr__(name: str) -> Any:
    """A package name, imported from its module on first use."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{where}", __name__), name)

__all__ = [
    "BatchScores",
    "BundleError",
    "CalibratedAnomalyModel",
    "Comparison",
    "ConformanceError",
    "DETECTORS",
    "DriftMonitor",
    "ModelBundle",
    "ScoreResult",
    "ScoringError",
    "ab_share",
    "TrainParams",
    "check_bundle",
    "compare",
    "evaluate",
    "explain",
    "load_bundle",
    "promotion_gate",
    "psi",
    "reference_from",
    "score_batch",
    "served_by_challenger",
    "severity_for",
    "train_bundle",
]
