"""The model bundle: anomaly model + attack classifier + everything needed to trust and explain them."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION

from .anomaly import CalibratedAnomalyModel
from .digest import sha256_file
from .errors import BundleError
from .forest import compile_forest

__all__ = ["ModelBundle", "BatchScores", "finite", "severity_for", "sha256_file", "load_bundle"]

_SEVERITIES = ((90, "critical"), (70, "high"), (40, "medium"), (0, "low"))


def severity_for(risk: int) -> str:
    """Severity name for a 0-100 risk."""
    for floor, name in _SEVERITIES:
        if risk >= floor:
            return name
    return "low"


@dataclass(slots=True)
class BatchScores:
    """Scores of N events, as arrays aligned with the input rows."""

    anomaly: np.ndarray  # calibrated anomaly score in [0, 1]
    labels: list[str]  # predicted label
    confidence: np.ndarray  # probability of the predicted label
    p_attack: np.ndarray  # 1 - P(benign)
    risk: np.ndarray  # int 0-100
    severity: list[str]

    def __len__(self) -> int:
        return len(self.labels)


# The models compute in float32: anything beyond is infinite to them (and refused by scikit-learn).
_FEATURE_LIMIT = 1e30


def finite(x: np.ndarray) -> np.ndarray:
    """Feature rows a model can take: NaN as 0, anything beyond +-1e30 (infinities too) clipped to it.

    The parsers bound every input number, so a non-finite feature is a bug; it must still cost
    one verdict's precision, never the batch (scikit-learn raises on it) or a wrong verdict.
    """
    if np.isfinite(x).all() and (np.abs(x) <= _FEATURE_LIMIT).all():
        return x
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=_FEATURE_LIMIT, neginf=-_FEATURE_LIMIT),
                   -_FEATURE_LIMIT, _FEATURE_LIMIT)


@dataclass
class ModelBundle:
    """Everything a worker needs to score and explain: versioned, verifiable, picklable."""

    name: str
    version: str
    feature_names: tuple[str, ...]
    classifier: Any  # predict_proba and classes_: a CompiledForest, or any scikit-learn-style classifier
    anomaly: CalibratedAnomalyModel
    baseline_median: np.ndarray  # per used feature, over benign training rows
    baseline_p99: np.ndarray
    importances: np.ndarray  # per used feature, sums to 1
    feature_schema_version: str = FEATURE_SCHEMA_VERSION
    anomaly_threshold: float = 0.99  # calibrated score above which an event counts as anomalous
    metadata: dict[str, Any] = field(default_factory=dict)
    # A small labelled sample of held-out rows (full FEATURE_NAMES width) that travels with the
    # bundle, so any worker can run the conformance check before serving it.
    fixture_x: np.ndarray | None = None
    fixture_y: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._columns: np.ndarray | None = None
        self._columns_for: tuple[str, tuple[str, ...]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        # Bundles pickled before the forest was compiled hold scikit-learn's: same answers, twice the cost.
        self.classifier = compile_forest(self.classifier)
        self._columns = None
        self._columns_for = None

    @property
    def labels(self) -> tuple[str, ...]:
        """Classifier labels, in `predict_proba` column order."""
        return tuple(str(c) for c in self.classifier.classes_)

    @property
    def columns(self) -> np.ndarray:
        """Indices of this bundle's features in the full `FEATURE_NAMES` vector (checked on every use)."""
        signature = (self.feature_schema_version, tuple(self.feature_names))
        if self._columns is None or self._columns_for != signature:
            if self.feature_schema_version != FEATURE_SCHEMA_VERSION:
                raise BundleError(
                    f"bundle needs feature schema {self.feature_schema_version}, "
                    f"this code computes {FEATURE_SCHEMA_VERSION}",
                    name=self.name, version=self.version,
                )
            missing = [n for n in self.feature_names if n not in FEATURE_NAMES]
            if missing:
                raise BundleError(f"unknown features {missing}", name=self.name, version=self.version)
            self._columns = np.array([FEATURE_NAMES.index(n) for n in self.feature_names], dtype=np.intp)
            self._columns_for = signature
        return self._columns

    def select(self, x_full: np.ndarray) -> np.ndarray:
        """This bundle's columns of a full feature matrix."""
        if x_full.ndim != 2 or x_full.shape[1] != len(FEATURE_NAMES):
            raise BundleError(
                f"expected a matrix with {len(FEATURE_NAMES)} columns, got shape {x_full.shape}",
                name=self.name, version=self.version,
            )
        return x_full[:, self.columns]

    def score(self, x_full: np.ndarray) -> BatchScores:
        """Score a batch (rows = events, columns = `FEATURE_NAMES`): one model call per model."""
        x = finite(self.select(np.asarray(x_full, dtype=np.float64)))
        n = x.shape[0]
        if n == 0:
            empty = np.zeros(0)
            return BatchScores(empty, [], empty, empty, np.zeros(0, dtype=np.int64), [])
        anomaly = self.anomaly.score(x)
        proba = self.classifier.predict_proba(x)
        labels = self.labels
        best = proba.argmax(axis=1)
        confidence = proba[np.arange(n), best]
        if LABEL_BENIGN in labels:
            p_attack = 1.0 - proba[:, labels.index(LABEL_BENIGN)]
        else:
            p_attack = confidence
        risk = risk_from(p_attack, anomaly, self.anomaly_threshold)
        return BatchScores(
            anomaly=anomaly,
            labels=[labels[i] for i in best],
            confidence=confidence,
            p_attack=p_attack,
            risk=risk,
            severity=[severity_for(int(r)) for r in risk],
        )

    def save(self, path: Path) -> str:
        """Write the bundle (pickle) and return the artifact's sha256."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
        return sha256_file(path)


def risk_from(p_attack: np.ndarray, anomaly: np.ndarray, anomaly_threshold: float) -> np.ndarray:
    """Risk 0-100: the classifier's attack probability, or the anomaly excess capped at 70.

    An event only the anomaly model dislikes can reach "high" but never "critical": blocking
    needs the classifier to name an attack.
    """
    lo = max(anomaly_threshold - 0.05, 0.0)
    excess = np.clip((anomaly - lo) / max(1.0 - lo, 1e-9), 0.0, 1.0)
    return np.rint(100.0 * np.maximum(p_attack, 0.7 * excess)).astype(np.int64)


def load_bundle(path: Path, expected_sha256: str | None = None) -> ModelBundle:
    """Load a bundle, verifying its sha256 first when one is given (never unpickle unverified bytes)."""
    # Read once: the bytes hashed are the bytes unpickled (a file swapped in between is never loaded).
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc}") from exc
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise BundleError(f"sha256 mismatch for {path}: expected {expected_sha256}, got {actual}")
    try:
        bundle = pickle.loads(data)
    except Exception as exc:
        raise BundleError(f"cannot load bundle from {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(bundle, ModelBundle):
        raise BundleError(f"{path} does not hold a ModelBundle")
    try:
        _ = bundle.columns  # schema version and feature names checked now, not on the first event
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path} holds an unusable bundle: {type(exc).__name__}: {exc}") from exc
    return bundle
