"""The conformance suite: every bundle passes `check_bundle`, and the check catches broken bundles."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from features.dataset import Dataset
from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from scoring.bundle import ModelBundle, load_bundle
from scoring.conformance import check_bundle
from scoring.errors import ConformanceError
from scoring.train import TrainingData, TrainingResult


class RandomProbaClassifier:
    """A classifier whose probabilities are fresh random numbers on every call (non-deterministic)."""

    def __init__(self, classes: np.ndarray, n_features: int) -> None:
        self.classes_ = classes
        self.n_features_in_ = n_features

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.random.default_rng().random((len(x), len(self.classes_)))
        return p / p.sum(axis=1, keepdims=True)


class BatchDependentClassifier:
    """Deterministic, but a lone row always gets the last class: its output depends on the batch."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.n_features_in_ = inner.n_features_in_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(x)
        if len(x) == 1:
            p = np.zeros_like(p)
            p[:, -1] = 1.0
        return p


def carried_fixture(bundle: ModelBundle) -> Dataset:
    return Dataset(np.asarray(bundle.fixture_x, dtype=np.float64), np.asarray(bundle.fixture_y, dtype=object), [])


def failures_of(bundle: ModelBundle, fixture: Dataset | None = None) -> list[str]:
    with pytest.raises(ConformanceError) as info:
        check_bundle(bundle, fixture)
    assert info.value.version == bundle.version
    assert info.value.failures, "a ConformanceError must list what failed"
    return info.value.failures


@pytest.fixture
def knn_loaded(knn_run: TrainingResult) -> ModelBundle:
    """The kNN bundle as a worker sees it: loaded from its artifact, sha256 verified."""
    return load_bundle(knn_run.artifact, expected_sha256=knn_run.sha256)


@pytest.mark.parametrize("bundle_fixture", ["knn_bundle", "iforest_bundle", "event_bundle", "knn_loaded"])
def test_every_bundle_passes_conformance(bundle_fixture: str, request: pytest.FixtureRequest) -> None:
    """Bundles trained with each detector and feature set, and a reloaded one, pass the check on their fixture."""
    bundle: ModelBundle = request.getfixturevalue(bundle_fixture)
    assert bundle.fixture_x is not None and bundle.fixture_y is not None
    assert bundle.fixture_x.shape[1] == len(FEATURE_NAMES)
    figures = check_bundle(bundle)
    assert figures["fixture_attack_auc"] >= 0.9
    assert 0.5 < figures["fixture_anomaly_auc"] <= 1.0


@pytest.mark.parametrize("bundle_fixture", ["knn_bundle", "iforest_bundle", "event_bundle"])
def test_every_bundle_passes_on_fresh_held_out_rows(bundle_fixture: str, scenario_data: TrainingData,
                                                    request: pytest.FixtureRequest) -> None:
    """An explicit fixture of held-out rows (both classes) passes too."""
    bundle: ModelBundle = request.getfixturevalue(bundle_fixture)
    test = scenario_data.test
    y = test.y.astype(str)
    idx = np.concatenate([np.flatnonzero(y == LABEL_BENIGN)[::40], np.flatnonzero(y != LABEL_BENIGN)[::20]])
    figures = check_bundle(bundle, test.subset(np.sort(idx)))
    assert figures["fixture_attack_auc"] >= 0.9


def test_check_does_not_modify_the_bundle(fresh_bundle: ModelBundle) -> None:
    """Running the check leaves scores unchanged."""
    x = fresh_bundle.fixture_x
    before = fresh_bundle.score(x)
    check_bundle(fresh_bundle)
    after = fresh_bundle.score(x)
    assert np.array_equal(before.risk, after.risk) and before.labels == after.labels


# --- what it catches -------------------------------------------------------------------------


def test_catches_non_deterministic_classifier(fresh_bundle: ModelBundle) -> None:
    """A classifier returning random probabilities on every call fails on determinism."""
    fresh_bundle.classifier = RandomProbaClassifier(fresh_bundle.classifier.classes_,
                                                    fresh_bundle.classifier.n_features_in_)
    failures = failures_of(fresh_bundle)
    assert any("not deterministic" in f for f in failures), failures


def test_catches_batch_dependent_scores(fresh_bundle: ModelBundle) -> None:
    """A row that scores differently alone than in a batch fails the check."""
    fresh_bundle.classifier = BatchDependentClassifier(fresh_bundle.classifier)
    failures = failures_of(fresh_bundle)
    assert any("alone than in a batch" in f for f in failures), failures


def test_catches_shuffled_feature_names(fresh_bundle: ModelBundle) -> None:
    """Feature names in another order than the classifier was trained on are refused."""
    names = list(fresh_bundle.feature_names)
    random.Random(0).shuffle(names)
    assert names != list(fresh_bundle.feature_names)
    fresh_bundle.feature_names = tuple(names)
    failures_of(fresh_bundle)


def test_shuffled_feature_names_are_reported_as_an_order_problem(fresh_bundle: ModelBundle) -> None:
    """The failure for shuffled feature names says that the order is wrong."""
    names = list(fresh_bundle.feature_names)
    random.Random(0).shuffle(names)
    fresh_bundle.feature_names = tuple(names)
    failures = failures_of(fresh_bundle)
    assert any("order" in f for f in failures), failures


def test_catches_two_swapped_feature_names(fresh_bundle: ModelBundle) -> None:
    """Swapping the first two feature names is refused."""
    names = list(fresh_bundle.feature_names)
    names[0], names[1] = names[1], names[0]
    fresh_bundle.feature_names = tuple(names)
    failures = failures_of(fresh_bundle)
    assert any("order" in f for f in failures), failures


def test_catches_classifier_without_benign_class(fresh_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A classifier trained on attack rows only (no 'benign' class) is refused."""
    train = scenario_data.train
    attacks = np.flatnonzero(train.y.astype(str) != LABEL_BENIGN)
    clf = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        fresh_bundle.select(train.x[attacks]), train.y[attacks].astype(str))
    assert LABEL_BENIGN not in clf.classes_
    fresh_bundle.classifier = clf
    failures = failures_of(fresh_bundle)
    assert any(f"no {LABEL_BENIGN!r} class" in f for f in failures), failures


def test_catches_single_class_fixture(knn_bundle: ModelBundle) -> None:
    """A fixture with benign rows only cannot check the sanity AUC and is refused."""
    fx = carried_fixture(knn_bundle)
    benign = np.flatnonzero(fx.y.astype(str) == LABEL_BENIGN)
    failures = failures_of(knn_bundle, Dataset(fx.x[benign], fx.y[benign], []))
    assert any("both benign and attack" in f for f in failures), failures


@pytest.mark.parametrize("width", [len(FEATURE_NAMES) - 1, len(FEATURE_NAMES) + 3, 5])
def test_catches_fixture_of_wrong_width(knn_bundle: ModelBundle, width: int) -> None:
    """A fixture whose rows are not full FEATURE_NAMES vectors is refused."""
    fx = carried_fixture(knn_bundle)
    bad = Dataset(np.zeros((len(fx), width)), fx.y, [])
    failures = failures_of(knn_bundle, bad)
    assert any("fixture has shape" in f for f in failures), failures


def test_catches_missing_fixture(fresh_bundle: ModelBundle) -> None:
    """A bundle with no fixture and none given cannot be checked."""
    fresh_bundle.fixture_x = fresh_bundle.fixture_y = None
    assert any("no fixture" in f for f in failures_of(fresh_bundle))


def test_catches_other_schema_version(fresh_bundle: ModelBundle) -> None:
    """A bundle for another feature schema is refused before anything is scored."""
    fresh_bundle.feature_schema_version = FEATURE_SCHEMA_VERSION + "-other"
    assert any("feature schema" in f for f in failures_of(fresh_bundle))


def test_catches_classifier_of_other_width(fresh_bundle: ModelBundle, event_bundle: ModelBundle) -> None:
    """A classifier trained on a different number of features than the bundle names is refused."""
    fresh_bundle.classifier = event_bundle.classifier
    failures = failures_of(fresh_bundle)
    assert any("classifier expects" in f for f in failures), failures


def test_catches_baseline_of_wrong_length(fresh_bundle: ModelBundle) -> None:
    """Per-feature arrays must have one entry per used feature; every bad one is listed."""
    fresh_bundle.baseline_p99 = fresh_bundle.baseline_p99[:-1]
    fresh_bundle.importances = np.append(fresh_bundle.importances, 0.0)
    failures = failures_of(fresh_bundle)
    assert any(f.startswith("baseline_p99 ") for f in failures)
    assert any(f.startswith("importances ") for f in failures)


def test_catches_useless_classifier_by_sanity_auc(fresh_bundle: ModelBundle) -> None:
    """A classifier that calls everything benign fails the sanity AUC."""
    fresh_bundle.classifier = ConstantBenign(fresh_bundle.classifier.classes_, fresh_bundle.classifier.n_features_in_)
    failures = failures_of(fresh_bundle)
    assert any("sanity AUC" in f for f in failures), failures


class ConstantBenign:
    """Deterministic and batch-independent, but blind: P(benign) = 1 for every row."""

    def __init__(self, classes: np.ndarray, n_features: int) -> None:
        self.classes_ = classes
        self.n_features_in_ = n_features

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros((len(x), len(self.classes_)))
        p[:, list(map(str, self.classes_)).index(LABEL_BENIGN)] = 1.0
        return p


@pytest.mark.parametrize("seed", range(6))
def test_the_sanity_auc_is_scikit_learns(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    from scoring.conformance import _auc

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 400))
    positive = rng.random(n) < 0.3
    positive[:2] = (True, False)
    # Few distinct scores: many ties, which count half.
    score = np.round(rng.random(n) * (1 + seed * 3)) / 3.0
    assert _auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
