"""The compiled forest and the plain-array kNN answer as scikit-learn does, and keep it out of a worker."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import NearestNeighbors

from scoring.anomaly import CalibratedAnomalyModel
from scoring.bundle import ModelBundle, load_bundle
from scoring.errors import ScoringError
from scoring.forest import CompiledForest, compile_forest, compile_kernel


def _data(seed: int = 0, n: int = 600, dim: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x[:, 0] = np.round(x[:, 0])  # a few distinct values: many rows sit exactly on a split
    x[:, 1] = 3.0  # a constant column
    y = np.where(x[:, 2] + 0.5 * x[:, 3] > 0.8, "attack_a", np.where(x[:, 4] < -1.0, "attack_b", "benign"))
    return x, y


def _probes(x: np.ndarray, forest: CompiledForest, seed: int = 1) -> np.ndarray:
    """Training rows, fresh rows, and rows placed exactly on and one float32 step beside the thresholds."""
    rng = np.random.default_rng(seed)
    nodes = forest.nodes[forest.nodes[:, 1] >= 0]
    thresholds = nodes.view(np.float32)[:, 3]
    rows = [x, rng.normal(size=(300, x.shape[1])) * 3.0]
    for step in (0.0, np.inf, -np.inf):
        edge = np.tile(x[:len(nodes) % 200 + 50], (1, 1)).astype(np.float32)
        pick = rng.integers(0, len(nodes), size=len(edge))
        t = thresholds[pick]
        if step:
            t = np.nextafter(t, np.float32(step))
        edge[np.arange(len(edge)), nodes[pick, 0]] = t
        rows.append(edge.astype(np.float64))
    return np.vstack(rows)


@pytest.mark.parametrize("params", [
    {"n_estimators": 25, "random_state": 0},
    {"n_estimators": 9, "max_depth": 4, "min_samples_leaf": 3, "class_weight": "balanced", "random_state": 1},
    {"n_estimators": 1, "random_state": 2},
])
def test_compiled_forest_answers_bit_for_bit_as_scikit_learn(params: dict) -> None:
    x, y = _data()
    forest = RandomForestClassifier(**params).fit(x, y)
    compiled = CompiledForest.from_sklearn(forest)
    probes = _probes(x, compiled)
    assert list(compiled.classes_) == list(forest.classes_)
    # Odd batch sizes too: the walk takes four rows at a time and the rest one by one.
    for n in (1, 2, 3, 4, 5, 7, len(probes)):
        assert np.array_equal(compiled.predict_proba(probes[:n]), forest.predict_proba(probes[:n]))
    assert compiled.predict_proba(probes[:0]).shape == (0, 3)


def test_compiled_forest_survives_pickling_and_refuses_wrong_widths() -> None:
    x, y = _data(seed=3)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    compiled = pickle.loads(pickle.dumps(CompiledForest.from_sklearn(forest)))
    assert np.array_equal(compiled.predict_proba(x), forest.predict_proba(x))
    with pytest.raises(ScoringError, match="expects 7 features"):
        compiled.predict_proba(x[:, :6])


@pytest.mark.parametrize("corrupt, message", [
    (lambda f: f.nodes.__setitem__((f.roots[1], 1), f.roots[1]), "children out of range"),  # a loop
    (lambda f: f.nodes.__setitem__((0, 2), len(f.nodes)), "children out of range"),
    (lambda f: f.nodes.__setitem__((0, 0), 99), "split features out of range"),
    (lambda f: f.nodes.__setitem__((int(np.flatnonzero(f.nodes[:, 1] < 0)[0]), 2), 10**6), "leaves out of range"),
    (lambda f: setattr(f, "roots", np.array([len(f.nodes)], dtype=np.int32)), "roots out of range"),
])
def test_a_corrupt_forest_is_refused_before_any_row_walks_it(corrupt, message: str) -> None:
    x, y = _data(seed=4)
    compiled = CompiledForest.from_sklearn(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y))
    corrupt(compiled)
    with pytest.raises(ScoringError, match=message):
        pickle.loads(pickle.dumps(compiled))


def test_only_a_fitted_random_forest_is_compiled() -> None:
    other = object()
    assert compile_forest(other) is other
    assert compile_forest(RandomForestClassifier()) is not None  # unfitted: left as it is
    with pytest.raises(ScoringError, match="fitted single-output"):
        CompiledForest.from_sklearn(RandomForestClassifier())


def test_knn_distances_are_exact_and_match_scikit_learn(gaussian) -> None:
    ref = gaussian(500, dim=6, seed=5)
    model = CalibratedAnomalyModel("knn", max_reference=400, seed=0).fit(ref)
    rows = np.vstack([gaussian(700, dim=6, seed=6) * 4.0, ref[:50]])  # ref rows: distance 0 or near it
    z = model._standardise(rows)
    exact = np.sqrt(((z[:, None, :] - model._nn[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    assert np.allclose(model._nearest(z), exact, rtol=1e-12, atol=1e-12)
    assert (model._nearest(z[-50:]) == 0.0).sum() >= 1  # a reference row is at distance 0, exactly
    sk = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(model._nn).kneighbors(z)[0][:, 0]
    assert np.allclose(model._nearest(z), sk, rtol=1e-9, atol=1e-5)


def _as_before(bundle: ModelBundle, forest: RandomForestClassifier) -> ModelBundle:
    """The same bundle as it was pickled before the compiled forest: scikit-learn objects inside."""
    old = copy.deepcopy(bundle)
    old.classifier = forest
    old.anomaly._nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(bundle.anomaly._nn)
    return old


def test_a_bundle_pickled_with_scikit_learn_objects_loads_compiled_with_the_same_scores(
        knn_bundle: ModelBundle, scenario_data, tmp_path: Path) -> None:
    x = knn_bundle.select(scenario_data.train.x)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, scenario_data.train.y.astype(str))
    old = _as_before(knn_bundle, forest)
    rows = scenario_data.test.x[:2000]
    expected_proba = forest.predict_proba(knn_bundle.select(rows))
    expected_anomaly = old.anomaly._nn.kneighbors(knn_bundle.anomaly._standardise(knn_bundle.select(rows)))[0][:, 0]
    path = tmp_path / "old.bin"
    path.write_bytes(pickle.dumps(old))
    loaded = load_bundle(path)
    assert isinstance(loaded.classifier, CompiledForest)
    assert isinstance(loaded.anomaly._nn, np.ndarray)
    assert np.array_equal(loaded.classifier.predict_proba(loaded.select(rows)), expected_proba)
    raw = loaded.anomaly._nearest(loaded.anomaly._standardise(loaded.select(rows)))
    # scikit-learn's expansion leaves up to ~1e-6 on a duplicate row (distance 0): the direct
    # distance is the exact one, so only that much may differ.
    assert np.allclose(raw, expected_anomaly, rtol=1e-9, atol=1e-5)


def test_a_trained_bundle_loads_checks_and_scores_without_importing_scikit_learn(
        knn_run, scenario_data, tmp_path: Path) -> None:
    # scikit-learn and SciPy were 40 % of a worker's start-up: a bundle `streamguard train` wrote
    # must load, pass the conformance check and score with neither imported. (numba itself loads
    # `scipy.linalg` for its BLAS bindings, 0.16 s, in any process that runs a kernel.)
    rows = tmp_path / "rows.npy"
    np.save(rows, scenario_data.test.x[:500])
    code = (
        "import sys, numpy as np; from pathlib import Path; "
        "from scoring.bundle import load_bundle; from scoring.conformance import check_bundle; "
        f"b = load_bundle(Path({str(knn_run.artifact)!r})); check_bundle(b); "
        f"s = b.score(np.load({str(rows)!r})); assert len(s) == 500; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn' "
        "or m.split('.')[:2] in (['scipy', 'sparse'], ['scipy', 'stats'], ['scipy', 'special'])))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout[:2000]


def test_the_warm_up_forest_walks_both_ways() -> None:
    compile_kernel()  # what `make install` runs to fill numba's cache
    nodes = np.array([[0, 1, 2, 0], [0, -1, 0, 0], [0, -1, 1, 0]], dtype=np.int32)
    forest = CompiledForest(np.array(["a", "b"]), 1, nodes, np.zeros(1, np.int32), np.eye(2), np.ones(1))
    proba = forest.predict_proba(np.array([[-1.0], [0.0], [1e-30], [np.float32(1e-45)]]))
    assert proba.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
