"""Models, batch scoring, risk and explanations, training and evaluation. Imports `features` only."""

from .anomaly import DETECTORS, CalibratedAnomalyModel
from .batch import ScoreResult, score_batch
from .bundle import BatchScores, ModelBundle, load_bundle, severity_for
from .challenger import Comparison, ab_share, compare, served_by_challenger
from .conformance import check_bundle
from .drift import DriftMonitor, psi, reference_from
from .errors import BundleError, ConformanceError, ScoringError
from .explain import explain
from .train import TrainParams, evaluate, promotion_gate, train_bundle

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
