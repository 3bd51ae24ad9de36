"""Training: a bundle from a `Dataset`, whole training runs, evaluation and the promotion gate.

A run gathers data (generator seeds or files), splits it honestly, trains, checks, evaluates
and writes the report beside the artifact.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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

from features.dataset import Dataset, build_dataset
from features.errors import ParseError
from features.events import LABEL_BENIGN, Event
from features.extract import EVENT_FEATURES, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from features.parsing import parse_line, read_cicflowmeter_csv, read_log_file
from features.simulation import ScenarioConfig, generate

from .anomaly import CalibratedAnomalyModel
from .bundle import ModelBundle
from .conformance import check_bundle
from .drift import reference_from
from .errors import ScoringError
from .forest import compile_forest
from .report import write_report
from .sources import by_source

__all__ = [
    "TrainParams",
    "train_bundle",
    "evaluate",
    "promotion_gate",
    "TrainingData",
    "TrainingResult",
    "generator_data",
    "file_data",
    "run_training",
    "FEATURE_SETS",
    # Re-exported: the CLI and retraining build `TrainingData` from it.
    "Dataset",
]

class TrainParams(dict):
    """Hyper-parameters, recorded verbatim in the bundle's metadata."""

    @classmethod
    def defaults(cls, **overrides: Any) -> TrainParams:
        p = cls(
            seed=0,
            classifier="RandomForestClassifier",
            n_estimators=150,
            max_depth=None,
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
        max_depth=p["max_depth"],
        min_samples_leaf=p["min_samples_leaf"],
        class_weight=p["class_weight"],
        random_state=p["seed"],
        n_jobs=-1,
    )
    clf.fit(x, y)
    anomaly = CalibratedAnomalyModel(
        p["anomaly_detector"], n_estimators=p["anomaly_estimators"], max_samples=p["anomaly_max_samples"],
        max_reference=p["anomaly_max_reference"], seed=p["seed"],
    ).fit(x[benign])

    classes, counts = np.unique(y, return_counts=True)
    return ModelBundle(
        name=name,
        version=version,
        feature_names=names,
        # The compiled form scores bit for bit as the fitted forest does, at half the cost, and a
        # worker loading it never imports scikit-learn.
        classifier=compile_forest(clf),
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


# --------------------------------------------------------------------------------------
# Training runs
# --------------------------------------------------------------------------------------

Progress = Callable[[str], None]

# "event" drops the window features: for captures whose rows lack the context windows need
# (the 79-column CICIDS2017 benign rows have no IPs or timestamps; windows would leak the label).
FEATURE_SETS: dict[str, tuple[str, ...]] = {"all": FEATURE_NAMES, "event": EVENT_FEATURES}


@dataclass
class TrainingData:
    """Train and evaluation rows, and how they were obtained."""

    train: Dataset
    test: Dataset
    description: dict[str, Any] = field(default_factory=dict)
    # (source name, rows): consecutive runs of `test`, for the figures per source.
    test_sources: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class TrainingResult:
    bundle: ModelBundle
    artifact: Path
    sha256: str
    metrics: dict[str, Any]
    conformance: dict[str, float]
    report: Path


def _noop(_: str) -> None:
    pass


def _generated_events(seed: int, duration_s: float, progress: Progress) -> list[Event]:
    cfg = ScenarioConfig(seed=seed, duration_s=duration_s)
    raws = generate(cfg)
    progress(f"generated {len(raws):,} raw events (seed {seed}, {duration_s:.0f} s of traffic)")
    events: list[Event] = []
    now = datetime.now(UTC)
    for raw in raws:
        # Generated payloads must parse: a failure here is a bug in the generator or a parser.
        ev = parse_line(raw.payload, now=now, bounds=None)
        events.append(ev.with_label(raw.label))
    return events


def generator_data(seeds: Sequence[int] = (0, 1, 2, 3), duration_s: float = 900.0,
                   eval_seeds: Sequence[int] = (100, 101), progress: Progress = _noop) -> TrainingData:
    """Train on some generator seeds, evaluate on others (held-out seeds, never a random split).

    Every seed draws its own attack campaigns (targets, rates, variants), so several training
    seeds are what teaches the classifier that a label has more than one shape.
    """
    overlap = set(seeds) & set(eval_seeds)
    if overlap:
        raise ScoringError(f"evaluation seeds must be held out; {sorted(overlap)} are also training seeds")
    train = Dataset.concat(build_dataset(_generated_events(s, duration_s, progress)) for s in seeds)
    progress(f"train features: {len(train):,} rows from seeds {list(seeds)}")
    test = Dataset.concat(build_dataset(_generated_events(s, duration_s, progress)) for s in eval_seeds)
    progress(f"evaluation features: {len(test):,} rows from held-out seeds {list(eval_seeds)}")
    return TrainingData(train, test, {"source": "scenario generator", "train_seeds": list(seeds),
                                      "eval_seeds": list(eval_seeds), "seconds_per_seed": duration_s,
                                      "split": "by seed"}, [("scenario generator", len(test))])


def _file_events(path: Path, kind: str, progress: Progress) -> tuple[list[Event], int]:
    now = datetime.now(UTC)
    reader = (read_cicflowmeter_csv(path, now=now, bounds=None) if kind == "flows"
              else read_log_file(path, now=now, bounds=None))
    events, bad = [], 0
    for item in reader:
        if isinstance(item, ParseError):
            bad += 1
        else:
            events.append(item)
    progress(f"{path.name}: {len(events):,} events, {bad} unparseable rows skipped")
    return events, bad


def file_data(flows: Sequence[Path] = (), logs: Sequence[Path] = (), *, split: str = "time",
              test_fraction: float = 0.3, eval_files: Sequence[Path] = (), progress: Progress = _noop) -> TrainingData:
    """Rows from CICFlowMeter CSVs and log files, split by time within each file or by file."""
    if split not in ("time", "file"):
        raise ScoringError(f"split must be 'time' or 'file', got {split!r}")
    eval_set = {Path(p).resolve() for p in eval_files}
    if split == "file" and not eval_set:
        raise ScoringError("--split file needs at least one evaluation file (--eval-file)")
    trains, tests, desc_files, skipped, sources = [], [], [], 0, []
    for path, kind in [(Path(p), "flows") for p in flows] + [(Path(p), "logs") for p in logs]:
        events, bad = _file_events(path, kind, progress)
        skipped += bad
        # Windows run over the file's whole timeline, as they would live; only rows are split.
        ds = build_dataset(events)
        if split == "file":
            (tests if path.resolve() in eval_set else trains).append(ds)
            role = "eval" if path.resolve() in eval_set else "train"
            if path.resolve() in eval_set:
                sources.append((path.name, len(ds)))
        else:
            cut = int(round(len(ds) * (1.0 - test_fraction)))
            trains.append(ds.subset(range(cut)))
            tests.append(ds.subset(range(cut, len(ds))))
            sources.append((path.name, len(ds) - cut))
            role = f"first {1 - test_fraction:.0%} train, last {test_fraction:.0%} eval (event-time order)"
        desc_files.append(f"{path.name} ({len(ds):,} rows; {role})")
    data = TrainingData(Dataset.concat(trains), Dataset.concat(tests),
                        {"source": "files", "files": desc_files, "split": split, "unparseable_rows": skipped},
                        sources)
    if len(data.train) == 0 or len(data.test) == 0:
        raise ScoringError(f"empty split: {len(data.train)} train rows, {len(data.test)} eval rows")
    return data


def _fixture(test: Dataset, n: int = 600, seed: int = 0) -> Dataset:
    """A small, class-stratified sample of evaluation rows for the conformance check."""
    rng = np.random.default_rng(seed)
    idx: list[int] = []
    for label in sorted(set(test.y.astype(str))):
        rows = np.flatnonzero(test.y.astype(str) == label)
        take = min(len(rows), max(n // max(len(set(test.y)), 1), 20))
        idx.extend(rng.choice(rows, size=take, replace=False).tolist())
    return test.subset(sorted(idx))


def run_training(data: TrainingData, *, name: str, out_dir: Path, feature_set: str = "all",
                 params: TrainParams | None = None, trained_at: datetime | None = None,
                 progress: Progress = _noop) -> TrainingResult:
    """Train a bundle, run the conformance check, evaluate and write the report beside the artifact."""
    if feature_set not in FEATURE_SETS:
        raise ScoringError(f"feature set must be one of {sorted(FEATURE_SETS)}, got {feature_set!r}")
    trained_at = trained_at or datetime.now(UTC)
    fingerprint = data.train.fingerprint()
    version = f"{trained_at:%Y%m%d-%H%M%S}-{fingerprint[:8]}"
    counts = Counter(map(str, data.train.y))
    progress(f"training {name} {version} on {len(data.train):,} rows: "
             + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    bundle = train_bundle(data.train, name=name, version=version, trained_at=trained_at,
                          feature_names=FEATURE_SETS[feature_set], params=params)
    fixture = _fixture(data.test)
    bundle.fixture_x, bundle.fixture_y = fixture.x, fixture.y.astype(str)
    progress(f"conformance check on {len(fixture):,} held-out rows")
    conformance = check_bundle(bundle)
    progress(f"evaluating on {len(data.test):,} held-out rows")
    metrics = evaluate(bundle, data.test)
    if data.test_sources:
        metrics["by_source"] = by_source(bundle, data.test, data.test_sources)
    bundle.metadata["metrics"] = {
        "macro_f1": metrics["classifier"]["macro_f1"],
        "anomaly_roc_auc": metrics["anomaly"].get("roc_auc"),
        "anomaly_fpr": metrics["anomaly"]["false_positive_rate"],
        "anomaly_detection_rate": metrics["anomaly"]["detection_rate"],
    }
    bundle.metadata["evaluation"] = data.description
    bundle.metadata["feature_set"] = feature_set
    folder = out_dir / version
    artifact = folder / "bundle.pkl"
    sha = bundle.save(artifact)
    context = {
        "model": f"{name} {version}",
        "artifact sha256": sha,
        "feature schema": f"{bundle.feature_schema_version} ({feature_set}: {len(bundle.feature_names)} features)",
        "data": json.dumps(data.description, default=str),
        "train rows": f"{len(data.train):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})",
        "eval rows": f"{len(data.test):,}",
        "data fingerprint": fingerprint,
        "conformance": json.dumps({k: round(v, 4) for k, v in conformance.items()}),
    }
    report = write_report(folder / "report", f"Evaluation of {name} {version}", metrics, context)
    progress(f"report: {report}")
    return TrainingResult(bundle, artifact, sha, metrics, conformance, report)
