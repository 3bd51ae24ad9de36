"""ModelBundle: risk and severity, persistence and integrity, schema and width checks."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest

from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from scoring.batch import score_batch
from scoring.bundle import BatchScores, ModelBundle, finite, load_bundle, risk_from, severity_for, sha256_file
from scoring.errors import BundleError, ScoringError
from scoring.train import TrainingData

WIDTH = len(FEATURE_NAMES)


def assert_same_scores(a: BatchScores, b: BatchScores) -> None:
    assert np.array_equal(a.anomaly, b.anomaly)
    assert np.array_equal(a.confidence, b.confidence)
    assert np.array_equal(a.p_attack, b.p_attack)
    assert np.array_equal(a.risk, b.risk)
    assert a.labels == b.labels
    assert a.severity == b.severity


@pytest.fixture
def saved(knn_bundle: ModelBundle, tmp_path: Path) -> tuple[Path, str]:
    """The kNN bundle written to a private file, with its sha256."""
    path = tmp_path / "bundle.pkl"
    return path, knn_bundle.save(path)


# --- severity and risk -----------------------------------------------------------------------


@pytest.mark.parametrize(("risk", "severity"), [
    (0, "low"), (1, "low"), (39, "low"),
    (40, "medium"), (55, "medium"), (69, "medium"),
    (70, "high"), (89, "high"),
    (90, "critical"), (99, "critical"), (100, "critical"),
])
def test_severity_thresholds(risk: int, severity: str) -> None:
    """0-39 low, 40-69 medium, 70-89 high, 90 and above critical."""
    assert severity_for(risk) == severity


@pytest.mark.parametrize("bundle_fixture", ["knn_bundle", "iforest_bundle", "event_bundle"])
def test_risk_range_and_severity_on_held_out_rows(bundle_fixture: str, scenario_data: TrainingData,
                                                  request: pytest.FixtureRequest) -> None:
    """Every held-out row gets an integer risk in 0..100 and the severity its risk implies."""
    bundle: ModelBundle = request.getfixturevalue(bundle_fixture)
    x = scenario_data.test.x[::5]  # every fifth held-out row: all classes, a fifth of the kNN cost
    scores = bundle.score(x)
    assert len(scores) == len(x)
    assert scores.risk.dtype.kind == "i"
    assert scores.risk.min() >= 0 and scores.risk.max() <= 100
    assert scores.severity == [severity_for(int(r)) for r in scores.risk]
    assert np.all((scores.anomaly >= 0) & (scores.anomaly <= 1))
    assert np.all((scores.confidence >= 0) & (scores.confidence <= 1))
    # The data hold both calm and alarming rows, so the scale is actually used.
    assert {"low", "critical"} <= set(scores.severity)


def test_p_attack_is_one_minus_p_benign(knn_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """p_attack is 1 - P(benign) from the classifier and the label is its arg-max class."""
    x = scenario_data.test.x[:300]
    scores = knn_bundle.score(x)
    proba = knn_bundle.classifier.predict_proba(knn_bundle.select(x))
    benign = knn_bundle.labels.index(LABEL_BENIGN)
    assert np.allclose(scores.p_attack, 1.0 - proba[:, benign])
    assert scores.labels == [knn_bundle.labels[i] for i in proba.argmax(axis=1)]
    assert np.allclose(scores.confidence, proba.max(axis=1))


def test_anomaly_only_risk_is_capped_at_70() -> None:
    """With P(attack) = 0 the most anomalous event possible reaches 70 ("high"), never "critical"."""
    risk = risk_from(np.array([0.0]), np.array([1.0]), 0.99)
    assert risk.tolist() == [70]
    assert severity_for(int(risk[0])) == "high"
    grid = risk_from(np.zeros(201), np.linspace(0.0, 1.0, 201), 0.99)
    assert grid.max() == 70
    assert np.all(np.diff(grid) >= 0)


def test_risk_is_the_larger_of_classifier_and_anomaly() -> None:
    """Risk follows P(attack) when it dominates and ignores anomaly below threshold - 0.05."""
    p = np.array([0.0, 0.95, 0.95, 0.30, 1.0, 0.0])
    a = np.array([0.5, 0.0, 1.0, 1.0, 1.0, 0.94])
    assert risk_from(p, a, 0.99).tolist() == [0, 95, 95, 70, 100, 0]


# --- persistence and integrity ---------------------------------------------------------------


def test_save_load_round_trip_scores_identically(knn_bundle: ModelBundle, saved: tuple[Path, str],
                                                  scenario_data: TrainingData) -> None:
    """A saved and reloaded bundle (sha256 verified) scores exactly like the original."""
    path, sha = saved
    assert sha == sha256_file(path)
    assert not list(path.parent.glob("*.tmp")), "save must not leave its temporary file behind"
    loaded = load_bundle(path, expected_sha256=sha)
    assert loaded.version == knn_bundle.version and loaded.feature_names == knn_bundle.feature_names
    x = scenario_data.test.x[:500]
    assert_same_scores(loaded.score(x), knn_bundle.score(x))


def test_load_with_wrong_sha256_raises_bundle_error(saved: tuple[Path, str]) -> None:
    """A sha256 that does not match the file is refused before unpickling."""
    path, sha = saved
    wrong = ("0" if sha[0] != "0" else "1") + sha[1:]
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(path, expected_sha256=wrong)


def test_flipped_byte_is_caught_by_the_sha256(saved: tuple[Path, str]) -> None:
    """Bytes changed after saving are refused when the expected sha256 is given."""
    path, sha = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(path, expected_sha256=sha)


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated_file_raises_bundle_error(saved: tuple[Path, str], keep: float) -> None:
    """A truncated artifact raises BundleError, never a raw pickle/EOF error."""
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BundleError):
        load_bundle(path)


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x80\x05garbage", b"\x00" * 64],
                         ids=["text", "bad-opcode", "zeros"])
def test_garbage_file_raises_bundle_error(tmp_path: Path, content: bytes) -> None:
    """Bytes that are not a pickle raise BundleError."""
    path = tmp_path / "bundle.pkl"
    path.write_bytes(content)
    with pytest.raises(BundleError):
        load_bundle(path)


def test_corrupt_protocol_byte_raises_bundle_error(saved: tuple[Path, str]) -> None:
    """A corrupted pickle header (protocol byte flipped) raises BundleError, not ValueError."""
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        load_bundle(path)


def test_missing_file_raises_bundle_error(tmp_path: Path) -> None:
    """A path with no file is a BundleError."""
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "nowhere.pkl")


def test_pickle_of_something_else_raises_bundle_error(tmp_path: Path) -> None:
    """A valid pickle that is not a ModelBundle is refused."""
    path = tmp_path / "bundle.pkl"
    path.write_bytes(pickle.dumps({"name": "not a bundle"}))
    with pytest.raises(BundleError, match="ModelBundle"):
        load_bundle(path)


def test_bundle_error_is_a_scoring_error() -> None:
    """Callers catching ScoringError also catch bundle problems."""
    assert issubclass(BundleError, ScoringError)


# --- schema and width ------------------------------------------------------------------------


def test_changed_schema_version_raises_when_used(fresh_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A bundle built for another feature schema refuses to score, naming the bundle."""
    fresh_bundle.feature_schema_version = FEATURE_SCHEMA_VERSION + "-other"
    with pytest.raises(BundleError) as info:
        fresh_bundle.score(scenario_data.test.x[:3])
    assert info.value.version == fresh_bundle.version
    assert fresh_bundle.version in str(info.value)


def test_changed_schema_version_is_refused_at_load(fresh_bundle: ModelBundle, tmp_path: Path) -> None:
    """load_bundle checks the schema version immediately, not on the first event."""
    fresh_bundle.feature_schema_version = FEATURE_SCHEMA_VERSION + "-other"
    path = tmp_path / "old.pkl"
    sha = fresh_bundle.save(path)
    with pytest.raises(BundleError, match="schema"):
        load_bundle(path, expected_sha256=sha)


def test_changed_schema_version_raises_even_after_use(fresh_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """The schema check is not bypassed by the column cache of a bundle that already scored."""
    fresh_bundle.score(scenario_data.test.x[:3])
    fresh_bundle.feature_schema_version = FEATURE_SCHEMA_VERSION + "-other"
    with pytest.raises(BundleError):
        fresh_bundle.score(scenario_data.test.x[:3])


def test_unknown_feature_name_raises(fresh_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A feature the schema does not define is a BundleError naming it."""
    fresh_bundle.feature_names = fresh_bundle.feature_names[:-1] + ("no_such_feature",)
    with pytest.raises(BundleError, match="no_such_feature"):
        fresh_bundle.score(scenario_data.test.x[:3])


@pytest.mark.parametrize("shape", [(5, WIDTH - 1), (5, WIDTH + 1), (WIDTH,), (1, 1, WIDTH)])
def test_select_rejects_wrong_width(knn_bundle: ModelBundle, shape: tuple[int, ...]) -> None:
    """select (and so score) only take a 2-D matrix with exactly FEATURE_NAMES columns."""
    x = np.zeros(shape)
    with pytest.raises(BundleError, match=str(WIDTH)):
        knn_bundle.select(x)
    with pytest.raises(BundleError):
        knn_bundle.score(x)


def test_select_picks_the_named_columns(event_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A bundle on a feature subset sees exactly those columns, in its order."""
    x = scenario_data.test.x[:10]
    idx = [FEATURE_NAMES.index(n) for n in event_bundle.feature_names]
    assert np.array_equal(event_bundle.select(x), x[:, idx])
    assert event_bundle.select(x).shape == (10, len(event_bundle.feature_names))


def test_empty_batch(knn_bundle: ModelBundle) -> None:
    """Zero rows score to empty, correctly typed arrays; score_batch returns an empty list."""
    scores = knn_bundle.score(np.zeros((0, WIDTH)))
    assert len(scores) == 0
    for arr in (scores.anomaly, scores.confidence, scores.p_attack, scores.risk):
        assert arr.shape == (0,)
    assert scores.risk.dtype.kind == "i"
    assert scores.labels == [] and scores.severity == []
    assert score_batch(knn_bundle, [], np.zeros((0, WIDTH))) == []


def test_pickle_round_trip_resets_the_column_cache(fresh_bundle: ModelBundle) -> None:
    """The cached column indices are not part of the pickled state."""
    _ = fresh_bundle.columns
    state = fresh_bundle.__getstate__()
    assert "_columns" not in state
    restored = pickle.loads(pickle.dumps(fresh_bundle))
    assert restored._columns is None
    assert np.array_equal(restored.columns, fresh_bundle.columns)
    assert copy.deepcopy(fresh_bundle)._columns is None


def test_non_finite_features_never_reach_the_models(knn_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A NaN or an infinity in a row costs that row its precision, never the batch or the other rows."""
    x = np.array(scenario_data.test.x[:20], dtype=np.float64)
    clean = knn_bundle.score(x)
    bad = x.copy()
    bad[3, :] = np.nan
    bad[4, 0] = np.inf
    bad[5, 1] = -np.inf
    bad[6, 2] = 1e200
    out = knn_bundle.score(bad)
    assert np.isfinite(out.anomaly).all() and np.isfinite(out.confidence).all()
    assert ((out.risk >= 0) & (out.risk <= 100)).all()
    keep = [i for i in range(20) if i not in (3, 4, 5, 6)]
    assert [out.labels[i] for i in keep] == [clean.labels[i] for i in keep]
    assert np.array_equal(out.risk[keep], clean.risk[keep])
    assert np.array_equal(finite(np.array([[np.nan, np.inf, -np.inf, 1e200, 2.0]])),
                          np.array([[0.0, 1e30, -1e30, 1e30, 2.0]]))
