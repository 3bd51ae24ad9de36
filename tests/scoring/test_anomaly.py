"""CalibratedAnomalyModel: calibrated to the benign reference, for both detectors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from scoring.anomaly import DETECTORS, CalibratedAnomalyModel
from scoring.errors import ScoringError

Gaussian = Callable[..., np.ndarray]


def fitted(detector: str, x: np.ndarray, seed: int = 0) -> CalibratedAnomalyModel:
    return CalibratedAnomalyModel(detector, n_estimators=100, seed=seed).fit(x)


def test_detectors_are_knn_and_iforest() -> None:
    """Both documented detectors are offered."""
    assert set(DETECTORS) == {"knn", "iforest"}


@pytest.mark.parametrize("detector", DETECTORS)
def test_scores_are_in_unit_interval(detector: str, gaussian: Gaussian) -> None:
    """Calibrated scores lie in [0, 1], one per row, for in- and out-of-distribution rows."""
    model = fitted(detector, gaussian(1000, seed=1))
    x = np.vstack([gaussian(300, seed=2), gaussian(50, seed=3) * 10.0])
    s = model.score(x)
    assert s.shape == (350,)
    assert np.all(np.isfinite(s))
    assert s.min() >= 0.0 and s.max() <= 1.0


@pytest.mark.parametrize("detector", DETECTORS)
def test_benign_false_positive_share_is_about_one_percent(detector: str, gaussian: Gaussian) -> None:
    """Held-out rows of the benign distribution exceed 0.99 about 1 % of the time."""
    model = fitted(detector, gaussian(3000, seed=1))
    s = model.score(gaussian(5000, seed=2))
    share = float((s > 0.99).mean())
    assert 0.002 <= share <= 0.03, share
    # And the bulk is spread over the whole range, not piled at one end.
    assert 0.35 <= float(np.median(s)) <= 0.65


@pytest.mark.parametrize("detector", DETECTORS)
def test_far_outliers_score_at_least_099(detector: str, gaussian: Gaussian) -> None:
    """Points far from every benign row (in every feature) score >= 0.99."""
    model = fitted(detector, gaussian(1000, seed=1))
    far = np.array([[25.0] * 5, [-25.0] * 5, [30.0, -30.0, 30.0, -30.0, 30.0], [1e4] * 5])
    s = model.score(far)
    assert np.all(s >= 0.99), s


def test_knn_far_outlier_along_one_feature_scores_at_least_099(gaussian: Gaussian) -> None:
    """kNN: a point far away along a single feature is as anomalous as one far in all of them."""
    model = fitted("knn", gaussian(1000, seed=1))
    far = np.array([[30.0, 0, 0, 0, 0], [0, 0, -40.0, 0, 0]])
    assert np.all(model.score(far) >= 0.99)


@pytest.mark.parametrize("detector", DETECTORS)
def test_scores_grow_with_distance_beyond_the_reference(detector: str, gaussian: Gaussian) -> None:
    """Farther outliers never score lower than nearer ones."""
    model = fitted(detector, gaussian(1000, seed=1))
    ladder = np.array([[k] * 5 for k in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)])
    s = model.score(ladder)
    assert np.all(np.diff(s) >= 0), s
    assert s[0] < 0.9 < s[-1]


@pytest.mark.parametrize("detector", DETECTORS)
def test_same_seed_same_scores(detector: str, gaussian: Gaussian) -> None:
    """Two fits with the same seed on the same rows score identically."""
    x, probe = gaussian(800, seed=1), gaussian(200, seed=2) * 2.0
    a = fitted(detector, x, seed=7).score(probe)
    b = fitted(detector, x, seed=7).score(probe)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("detector", DETECTORS)
def test_scoring_is_repeatable_and_batch_independent(detector: str, gaussian: Gaussian) -> None:
    """Scoring the same rows twice, or one at a time, gives the same numbers."""
    model = fitted(detector, gaussian(800, seed=1))
    probe = gaussian(20, seed=2) * 2.0
    batch = model.score(probe)
    assert np.array_equal(batch, model.score(probe))
    singles = np.array([model.score(probe[i : i + 1])[0] for i in range(len(probe))])
    assert np.allclose(singles, batch, rtol=0, atol=1e-12)


def test_unknown_detector_raises_scoring_error() -> None:
    """An unknown detector name is refused with ScoringError naming it."""
    with pytest.raises(ScoringError, match="lof"):
        CalibratedAnomalyModel("lof")


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("n", [0, 1, 19])
def test_fewer_than_20_benign_rows_raises(detector: str, n: int, gaussian: Gaussian) -> None:
    """Fitting on fewer than 20 benign rows raises ScoringError."""
    with pytest.raises(ScoringError, match="20"):
        CalibratedAnomalyModel(detector).fit(gaussian(n))


@pytest.mark.parametrize("detector", DETECTORS)
def test_exactly_20_benign_rows_is_enough(detector: str, gaussian: Gaussian) -> None:
    """Twenty benign rows is the documented minimum and fits."""
    s = CalibratedAnomalyModel(detector).fit(gaussian(20)).score(gaussian(5, seed=9))
    assert s.shape == (5,) and np.all((s >= 0) & (s <= 1))


@pytest.mark.parametrize("detector", DETECTORS)
def test_score_before_fit_raises_scoring_error(detector: str, gaussian: Gaussian) -> None:
    """Using an unfitted model is a ScoringError, not an AttributeError."""
    with pytest.raises(ScoringError):
        CalibratedAnomalyModel(detector).score(gaussian(3))


@pytest.mark.parametrize("detector", DETECTORS)
def test_constant_columns_do_not_produce_nan(detector: str, gaussian: Gaussian) -> None:
    """Benign data with constant columns (zeros and a non-zero constant) still scores finite values."""
    x = gaussian(600, dim=3, seed=1)
    x = np.hstack([x, np.zeros((600, 1)), np.full((600, 1), 7.0)])
    model = fitted(detector, x)
    probe = np.hstack([gaussian(50, dim=3, seed=2), np.zeros((50, 1)), np.full((50, 1), 7.0)])
    deviating = probe.copy()
    deviating[:, 3] = 5.0  # a value the constant column never took
    s = model.score(np.vstack([probe, deviating]))
    assert np.all(np.isfinite(s))
    assert s.min() >= 0.0 and s.max() <= 1.0


def test_knn_flags_deviation_in_a_constant_column(gaussian: Gaussian) -> None:
    """kNN: a value in a feature that was constant in benign data is unusual (unit scale, not divide-by-zero)."""
    x = np.hstack([gaussian(600, dim=3, seed=1), np.zeros((600, 1))])
    model = fitted("knn", x)
    probe = np.hstack([gaussian(20, dim=3, seed=2) * 0.1, np.full((20, 1), 50.0)])
    assert np.all(model.score(probe) >= 0.99)


@pytest.mark.parametrize("detector", DETECTORS)
def test_all_constant_benign_data_scores_ties_as_half(detector: str) -> None:
    """If every benign row is identical, an identical row ties the reference and scores about 0.5, not NaN or 1."""
    x = np.ones((100, 4))
    s = fitted(detector, x).score(np.ones((3, 4)))
    assert np.all(np.isfinite(s))
    assert np.allclose(s, 0.5, atol=0.02), s
