"""Batch scoring: N events in, N results out, one call per model per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.events import Event

from .bundle import ModelBundle
from .explain import explain

__all__ = ["ScoreResult", "score_batch"]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The verdict on one event."""

    anomaly_score: float  # calibrated, 0-1
    label: str
    confidence: float  # 0-1
    risk: int  # 0-100
    severity: str  # low | medium | high | critical
    reasoning: tuple[str, ...]
    features: dict[str, float]  # the bundle's features with their values (explained events only, else empty)
    model_name: str
    model_version: str


def score_batch(bundle: ModelBundle, events: Sequence[Event], x_full: np.ndarray,
                *, explain_min_risk: int = 0) -> list[ScoreResult]:
    """Score a batch; reasoning and the feature values are written for events at or above `explain_min_risk` only."""
    if len(events) != len(x_full):
        raise ValueError(f"{len(events)} events but {len(x_full)} feature rows")
    if len(events) == 0:
        return []
    x_full = np.asarray(x_full, dtype=np.float64)
    scores = bundle.score(x_full)  # checks the width: a BundleError names the expected shape
    rows = [i for i in range(len(events)) if scores.risk[i] >= explain_min_risk]
    reasons = dict(zip(rows, explain(bundle, x_full, events, scores, rows)))
    used = bundle.select(x_full)
    names = bundle.feature_names
    # A dict of every feature per event cost more than the rest of this loop; only explained rows leave.
    evidence = {i: dict(zip(names, used[i].tolist())) for i in rows}
    return [
        ScoreResult(
            anomaly_score=float(scores.anomaly[i]),
            label=scores.labels[i],
            confidence=float(scores.confidence[i]),
            risk=int(scores.risk[i]),
            severity=scores.severity[i],
            reasoning=tuple(reasons.get(i, ())),
            features=evidence.get(i, {}),
            model_name=bundle.name,
            model_version=bundle.version,
        )
        for i in range(len(events))
    ]
