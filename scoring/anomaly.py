"""Anomaly models calibrated to [0, 1]: the share of benign reference events less anomalous."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors

from .errors import ScoringError

__all__ = ["CalibratedAnomalyModel", "DETECTORS"]

DETECTORS = ("knn", "iforest")


class CalibratedAnomalyModel:
    """A detector whose raw score is mapped through the benign reference distribution.

    A calibrated score of 0.99 means "more anomalous than 99 % of held-out benign events",
    whatever the version or detector: that is what makes thresholds comparable across retrains.

    Detectors: `knn` — distance to the nearest benign training row after standardising each
    feature (a capped, seeded sample of rows, so scoring cost is bounded); `iforest` —
    IsolationForest. On CICIDS2017 flows kNN ranks attacks markedly better (see README).
    """

    def __init__(self, detector: str = "knn", *, n_estimators: int = 200, max_samples: int = 512,
                 max_reference: int = 4096, seed: int = 0) -> None:
        if detector not in DETECTORS:
            raise ScoringError(f"anomaly detector must be one of {DETECTORS}, got {detector!r}")
        self.detector = detector
        self.params = {"detector": detector, "n_estimators": n_estimators, "max_samples": max_samples,
                       "max_reference": max_reference, "seed": seed}
        self._forest: IsolationForest | None = None
        self._nn: NearestNeighbors | None = None
        self._mean = np.zeros(0)
        self._scale = np.ones(0)
        self._reference = np.zeros(0)

    def fit(self, x_benign: np.ndarray, calibration_fraction: float = 0.3) -> CalibratedAnomalyModel:
        """Fit on benign rows in event-time order; the latest share of them becomes the calibration reference."""
        if len(x_benign) < 20:
            raise ScoringError(f"need at least 20 benign rows to fit the anomaly model, got {len(x_benign)}")
        rng = np.random.default_rng(self.params["seed"])
        n = len(x_benign)
        n_cal = max(int(n * calibration_fraction), min(n // 2, 50))
        # Rows come in event-time order. Calibrating on the most recent part, not a random
        # sample, matters: neighbouring rows of one traffic stream are near-copies, so a random
        # calibration sample sits unrealistically close to the fit rows and the threshold
        # lets through far more than 1 % of tomorrow's benign traffic.
        cal, fit = x_benign[n - n_cal :], x_benign[: n - n_cal]
        if self.detector == "iforest":
            self._forest = IsolationForest(n_estimators=self.params["n_estimators"],
                                           max_samples=min(self.params["max_samples"], len(fit)),
                                           random_state=self.params["seed"], n_jobs=1).fit(fit)
        else:
            self._mean = fit.mean(axis=0)
            std = fit.std(axis=0)
            # Constant features in benign data: any deviation is unusual, so give them a unit
            # scale rather than dividing by zero.
            self._scale = np.where(std > 1e-9, std, 1.0)
            ref = fit
            if len(ref) > self.params["max_reference"]:
                ref = ref[rng.choice(len(ref), self.params["max_reference"], replace=False)]
            self._nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self._standardise(ref))
        self._reference = np.sort(self._raw(cal))
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self._mean) / self._scale, -1e3, 1e3)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if self._forest is not None:
            # score_samples is high for normal points; negate so that higher = more anomalous.
            return -self._forest.score_samples(x)
        if self._nn is None:
            raise ScoringError("anomaly model used before fit")
        return self._nn.kneighbors(self._standardise(x), return_distance=True)[0][:, 0]

    def score(self, x: np.ndarray) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1] for each row, strictly increasing with the raw score."""
        raw = self._raw(x)
        ref = self._reference
        n = len(ref)
        # Mid-rank ECDF scaled into [0, n/(n+1)]: ties with the reference count half.
        lo = np.searchsorted(ref, raw, side="left")
        hi = np.searchsorted(ref, raw, side="right")
        out = (lo + hi) / (2.0 * (n + 1))
        # Beyond the most anomalous reference row, keep ranking instead of saturating at 1.0:
        # the last 1/(n+1) of the scale is spent on how far beyond the reference a row is.
        top = ref[-1]
        spread = max(top - ref[n // 2], 1e-9)
        beyond = raw > top
        out[beyond] = (n + 1.0 - np.exp(-(raw[beyond] - top) / spread)) / (n + 1.0)
        return np.clip(out, 0.0, 1.0)
