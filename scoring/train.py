"""Training a bundle from a `Dataset`, and evaluating one on held-out data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from features.dataset import Dataset
from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION

from .anomaly import CalibratedAnomalyModel
from .bundle import ModelBundle
from .drift import reference_from
from .errors import ScoringError

__all__ = ["TrainParams", "train_bundle", "evaluate"]


class TrainParams(dict):
    """Hyper-parameters, recorded verbatim in the bundle's metadata."""

    @classmethod
    def defaults(cls, **overrides: Any) -> TrainParams:
        p = cls(
            seed=0,
            classifier="RandomForestClassifier",
            n_estimators=150,
            min_samples_leaf=1,
            class_weight="balanced_subsample",
            anomaly_detector="knn",
            anomaly_estimators=200,
            anomaly_max_samples=512,
            anomaly_max_reference=4096,
            anomaly_threshold=0.99,
        )
        p.update(overrides)
        return p


def train_bundle(
    train: Dataset,
    *,
    name: str,
    version: str,
    trained_at: datetime,
    feature_names: Sequence[str] = FEATURE_NAMES,
    params: TrainParams | None = None,
) -> ModelBundle:
    """Fit the attack classifier on all rows and the anomaly model on the benign rows."""
    p = params or TrainParams.defaults()
    unknown = [n for n in feature_names if n not in FEATURE_NAMES]
    if unknown:
        raise ScoringError(f"unknown features {unknown}")
    # Schema order, whatever order the caller gave: the conformance check relies on it.
    cols = sorted({FEATURE_NAMES.index(n) for n in feature_names})
    names = tuple(FEATURE_NAMES[c] for c in cols)
    x = train.x[:, cols]
    y = train.y.astype(str)
    benign = y == LABEL_BENIGN
    if benign.sum() < 20:
        raise ScoringError(f"need at least 20 benign training rows for the anomaly model, got {int(benign.sum())}")
    if len(set(y)) < 2:
        raise ScoringError(f"need at least two classes to train the classifier, got {sorted(set(y))}")

    clf = RandomForestClassifier(
        n_estimators=p["n_estimators"],
        min_samples_leaf=p["min_samples_leaf"],
        class_weight=p["class_weight"],
        random_state=p["seed"],
        n_jobs=-1,
    )
    clf.fit(x, y)
    # Scoring batches are small and frequent: thread start-up would cost more than it saves.
    clf.n_jobs = 1
    anomaly = CalibratedAnomalyModel(
        p["anomaly_detector"], n_estimators=p["anomaly_estimators"], max_samples=p["anomaly_max_samples"],
        max_reference=p["anomaly_max_reference"], seed=p["seed"],
    ).fit(x[benign])

    classes, counts = np.unique(y, return_counts=True)
    return ModelBundle(
        name=name,
        version=version,
        feature_names=names,
        classifier=clf,
        anomaly=anomaly,
        baseline_median=np.median(x[benign], axis=0),
        baseline_p99=np.quantile(x[benign], 0.99, axis=0),
        importances=np.asarray(clf.feature_importances_, dtype=np.float64),
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        anomaly_threshold=float(p["anomaly_threshold"]),
        metadata={
            "trained_at_ms": int(trained_at.timestamp() * 1000),
            "data_fingerprint": train.fingerprint(),
            "train_rows": int(len(y)),
            "train_class_counts": {str(c): int(n) for c, n in zip(classes, counts)},
            "params": dict(p),
            "sklearn_version": sklearn.__version__,
            # What live features are compared with to measure drift (PSI).
            "drift_reference": reference_from(x, names),
        },
    )


def evaluate(bundle: ModelBundle, test: Dataset) -> dict[str, Any]:
    """Classifier and anomaly metrics on held-out rows (plain data, JSON-ready)."""
    scores = bundle.score(test.x)
    y_true = test.y.astype(str)
    y_pred = np.array(scores.labels, dtype=str)
    labels = sorted(set(y_true) | set(y_pred))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, lab in enumerate(labels)
    }
    present = [lab for lab in labels if (y_true == lab).any()]
    is_attack = y_true != LABEL_BENIGN
    thr = bundle.anomaly_threshold
    flagged = scores.anomaly >= thr
    out: dict[str, Any] = {
        "rows": int(len(y_true)),
        "classifier": {
            "labels": labels,
            "per_class": per_class,
            "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
            "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "anomaly": {
            "threshold": thr,
            "false_positive_rate": float(flagged[~is_attack].mean()) if (~is_attack).any() else None,
            "detection_rate": float(flagged[is_attack].mean()) if is_attack.any() else None,
            "detection_rate_by_label": {
                lab: float(flagged[y_true == lab].mean()) for lab in present if lab != LABEL_BENIGN
            },
        },
    }
    if is_attack.any() and (~is_attack).any():
        out["anomaly"]["roc_auc"] = float(roc_auc_score(is_attack, scores.anomaly))
        # Best detection any threshold could reach at <= 1 % false positives on these rows: an
        # oracle figure (the threshold is picked on the evaluation data), reported beside the
        # honest one at the calibrated threshold.
        fpr, tpr, _ = roc_curve(is_attack, scores.anomaly)
        out["anomaly"]["oracle_detection_at_1pct_fpr"] = float(tpr[fpr <= 0.01].max(initial=0.0))
        out["anomaly"]["average_precision"] = float(average_precision_score(is_attack, scores.anomaly))
        out["classifier"]["attack_roc_auc"] = float(roc_auc_score(is_attack, scores.p_attack))
    out["_curves"] = {"is_attack": is_attack, "anomaly": scores.anomaly, "p_attack": scores.p_attack}
    return out


def promotion_gate(champion: dict[str, Any] | None, challenger: dict[str, Any], *,
                   max_regression: float = 0.005) -> tuple[bool, str]:
    """Whether a challenger may replace the champion, both evaluated on the same rows; and why.

    Metrics are `evaluate()` output. Neither the classifier's macro-F1 nor the anomaly ROC AUC
    may fall by more than `max_regression`. Without a champion the challenger passes.
    """
    if champion is None:
        return True, "no champion to compare with"
    checks = [("classifier macro-F1", champion["classifier"]["macro_f1"], challenger["classifier"]["macro_f1"]),
              ("anomaly ROC AUC", champion["anomaly"].get("roc_auc"), challenger["anomaly"].get("roc_auc"))]
    worse, parts = [], []
    for what, old, new in checks:
        if old is None or new is None:
            parts.append(f"{what} not comparable")
            continue
        parts.append(f"{what} {new:.4f} vs {old:.4f}")
        if new < old - max_regression:
            worse.append(f"{what} fell from {old:.4f} to {new:.4f} (more than {max_regression:g})")
    if worse:
        return False, "; ".join(worse)
    return True, "; ".join(parts)
