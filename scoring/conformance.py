"""The conformance check every bundle passes before it scores a single event."""

from __future__ import annotations

import pickle

import numpy as np

from features.dataset import Dataset
from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION

from .bundle import ModelBundle
from .errors import BundleError, ConformanceError

__all__ = ["check_bundle"]


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half), as scikit-learn's `roc_auc_score`.

    Here rather than scikit-learn's because a worker runs this check on every bundle it loads,
    and scikit-learn's import alone costs it about a second of start-up.
    """
    positive = np.asarray(positive, dtype=bool)
    _, inverse, counts = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True, return_counts=True)
    # The mid-rank of each distinct score, 1-based.
    mid = np.cumsum(counts) - (counts - 1) / 2.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((mid[inverse][positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def check_bundle(bundle: ModelBundle, fixture: Dataset | None = None, *, min_auc: float = 0.9) -> dict[str, float]:
    """Run every check; raise `ConformanceError` listing all failures, else return the sanity figures.

    Without `fixture`, the labelled sample the bundle carries is used.
    """
    failures: list[str] = []
    if fixture is None:
        if bundle.fixture_x is None or bundle.fixture_y is None:
            raise ConformanceError(["bundle carries no fixture set and none was given"], version=bundle.version)
        fixture = Dataset(np.asarray(bundle.fixture_x, dtype=np.float64),
                          np.asarray(bundle.fixture_y, dtype=object), [])
    figures: dict[str, float] = {}

    if bundle.feature_schema_version != FEATURE_SCHEMA_VERSION:
        failures.append(f"feature schema {bundle.feature_schema_version} != {FEATURE_SCHEMA_VERSION}")
        raise ConformanceError(failures, version=bundle.version)
    try:
        cols = bundle.columns
    except BundleError as exc:
        raise ConformanceError([str(exc)], version=bundle.version) from exc
    if len(set(bundle.feature_names)) != len(bundle.feature_names):
        failures.append("duplicate feature names")
    # Training always uses schema order, so anything else means names and model disagree.
    if not np.all(np.diff(cols) > 0):
        failures.append("feature order does not match the schema (names are not in schema order)")
    n_used = len(bundle.feature_names)
    if getattr(bundle.classifier, "n_features_in_", n_used) != n_used:
        failures.append(f"classifier expects {bundle.classifier.n_features_in_} features, bundle names {n_used}")
    for arr_name in ("baseline_median", "baseline_p99", "importances"):
        if len(getattr(bundle, arr_name)) != n_used:
            failures.append(f"{arr_name} has {len(getattr(bundle, arr_name))} entries for {n_used} features")
    if LABEL_BENIGN not in bundle.labels:
        failures.append(f"classifier has no {LABEL_BENIGN!r} class: {bundle.labels}")
    if failures:
        raise ConformanceError(failures, version=bundle.version)

    x = fixture.x
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ConformanceError([f"fixture has shape {x.shape}, expected (n, {len(FEATURE_NAMES)})"],
                               version=bundle.version)
    first = bundle.score(x)
    second = bundle.score(x)
    for name in ("anomaly", "confidence", "p_attack", "risk"):
        a, b = getattr(first, name), getattr(second, name)
        if not np.all(np.isfinite(a)):
            failures.append(f"{name} has non-finite values")
        if not np.array_equal(a, b):
            failures.append(f"{name} differs between two identical calls (not deterministic)")
    if first.labels != second.labels:
        failures.append("labels differ between two identical calls (not deterministic)")
    if len(first) and not (first.anomaly.min() >= 0 and first.anomaly.max() <= 1):
        failures.append("anomaly score outside [0, 1]")
    if len(first) and not (first.confidence.min() >= 0 and first.confidence.max() <= 1):
        failures.append("confidence outside [0, 1]")
    if len(first) and not (first.risk.min() >= 0 and first.risk.max() <= 100):
        failures.append("risk outside [0, 100]")

    restored = pickle.loads(pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL))
    again = restored.score(x)
    if not (np.array_equal(again.anomaly, first.anomaly) and again.labels == first.labels
            and np.array_equal(again.risk, first.risk)):
        failures.append("scores change after a pickle round trip")

    # A row's score must not depend on which other rows share its batch.
    k = min(len(x), 25)
    singles = [bundle.score(x[i : i + 1]) for i in range(k)]
    if any(s.labels[0] != first.labels[i] or s.risk[0] != first.risk[i] for i, s in enumerate(singles)):
        failures.append("a row scores differently alone than in a batch")

    is_attack = fixture.y.astype(str) != LABEL_BENIGN
    if is_attack.any() and (~is_attack).any():
        auc = float(_auc(is_attack, first.p_attack))
        figures["fixture_attack_auc"] = auc
        figures["fixture_anomaly_auc"] = float(_auc(is_attack, first.anomaly))
        if auc < min_auc:
            failures.append(f"sanity AUC {auc:.3f} on the fixture set is below {min_auc}")
    else:
        failures.append("fixture set needs both benign and attack rows")
    if failures:
        raise ConformanceError(failures, version=bundle.version)
    return figures
