"""Anomaly models calibrated to [0, 1]: the share of benign reference events less anomalous."""

from __future__ import annotations

from typing import Any

import numpy as np

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
        self._forest: Any = None  # scikit-learn's IsolationForest, imported only when asked for
        self._nn: np.ndarray | None = None  # standardised benign reference rows (kNN)
        self._nn_sq = np.zeros(0)  # their squared norms
        self._nn_m2t: np.ndarray | None = None  # -2 x their transpose, built on first use
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
            from sklearn.ensemble import IsolationForest

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
            self._nn = np.ascontiguousarray(self._standardise(ref))
            self._nn_sq = (self._nn * self._nn).sum(axis=1)
            self._nn_m2t = None
        self._reference = np.sort(self._raw(cal))
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self._mean) / self._scale, -1e3, 1e3)

    def __setstate__(self, state: dict[str, Any]) -> None:
        nn = state.get("_nn")
        if nn is not None and not isinstance(nn, np.ndarray):
            # A bundle pickled before the reference rows were kept as a plain array held
            # scikit-learn's NearestNeighbors: its fitted rows are the same reference.
            state["_nn"] = np.ascontiguousarray(nn._fit_X, dtype=np.float64)
        if state.get("_nn") is not None:
            state["_nn_sq"] = (state["_nn"] * state["_nn"]).sum(axis=1)
        state["_nn_m2t"] = None
        self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_nn_sq", "_nn_m2t")}

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if self._forest is not None:
            # score_samples is high for normal points; negate so that higher = more anomalous.
            return -self._forest.score_samples(x)
        if self._nn is None:
            raise ScoringError("anomaly model used before fit")
        return self._nearest(self._standardise(x))

    def _nearest(self, z: np.ndarray) -> np.ndarray:
        """Euclidean distance from each row to its nearest reference row."""
        ref, ref_sq = self._nn, self._nn_sq
        if self._nn_m2t is None:
            self._nn_m2t = np.ascontiguousarray(-2.0 * ref.T)
        out = np.empty(len(z))
        # Blocks of 128 rows keep the distance matrix in cache (128 x 4,096 doubles = 4 MiB).
        block = np.empty((min(len(z), 128), len(ref)))
        for s in range(0, len(z), 128):
            zb = z[s:s + 128]
            d2 = block[:len(zb)]
            # |z - r|^2 - |z|^2 = |r|^2 - 2 z.r: one matrix product ranks the reference rows ...
            np.matmul(zb, self._nn_m2t, out=d2)
            d2 += ref_sq
            diff = zb - ref[d2.argmin(axis=1)]
            # ... and the nearest one's distance is then computed directly, free of the expansion's
            # cancellation (it matches scikit-learn's NearestNeighbors to 1e-13).
            out[s:s + 128] = np.sqrt((diff * diff).sum(axis=1))
        return out

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
