"""Factory fixtures of the scoring tests: small generated datasets, trained bundles, synthetic rows and events.

Everything here is pure (no Kafka, no MongoDB): the data come from the seeded scenario
generator and from numpy, and the bundles are trained once per session with small parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from features.events import Event
from features.extract import WindowStore
from features.parsing import parse_line
from scoring.bundle import ModelBundle
from scoring.train import TrainingData, TrainingResult, TrainParams, generator_data, run_training

TRAIN_SEEDS = (0, 1)
EVAL_SEEDS = (100,)
DURATION_S = 240.0
TRAINED_AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
PARSE_NOW = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist worker runs every scoring test: the session bundles below are trained once."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.xdist_group("scoring"))


def small_params(**overrides: object) -> TrainParams:
    """Training parameters small enough for unit tests."""
    return TrainParams.defaults(**{"n_estimators": 40, "anomaly_estimators": 60, **overrides})


@pytest.fixture(scope="session")
def scenario_data() -> TrainingData:
    """Labelled rows from the generator: seeds 0 and 1 for training, held-out seed 100 for evaluation."""
    return generator_data(seeds=TRAIN_SEEDS, duration_s=DURATION_S, eval_seeds=EVAL_SEEDS)


@pytest.fixture(scope="session")
def train_run(scenario_data: TrainingData, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TrainingResult]:
    """Factory: `train_run(detector="knn", feature_set="all")` runs `run_training` once per combination."""
    cache: dict[tuple[str, str], TrainingResult] = {}

    def make(detector: str = "knn", feature_set: str = "all") -> TrainingResult:
        key = (detector, feature_set)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"models-{detector}-{feature_set}")
            cache[key] = run_training(scenario_data, name="sg-test", out_dir=out, feature_set=feature_set,
                                      params=small_params(anomaly_detector=detector), trained_at=TRAINED_AT)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def knn_run(train_run: Callable[..., TrainingResult]) -> TrainingResult:
    """The training run of the default bundle (kNN anomaly detector, all features)."""
    return train_run("knn", "all")


@pytest.fixture(scope="session")
def knn_bundle(knn_run: TrainingResult) -> ModelBundle:
    """Session bundle trained with the kNN anomaly detector on every feature (do not mutate)."""
    return knn_run.bundle


@pytest.fixture(scope="session")
def iforest_bundle(train_run: Callable[..., TrainingResult]) -> ModelBundle:
    """Session bundle trained with the IsolationForest anomaly detector (do not mutate)."""
    return train_run("iforest", "all").bundle


@pytest.fixture(scope="session")
def event_bundle(train_run: Callable[..., TrainingResult]) -> ModelBundle:
    """Session bundle trained on the event-only feature set (no window features; do not mutate)."""
    return train_run("knn", "event").bundle


@pytest.fixture
def fresh_bundle(knn_bundle: ModelBundle) -> ModelBundle:
    """A private deep copy of the kNN bundle that a test may mutate."""
    return copy.deepcopy(knn_bundle)


@pytest.fixture
def gaussian() -> Callable[..., np.ndarray]:
    """Factory: `gaussian(n, dim=5, seed=0)` standard-normal rows from a seeded generator."""

    def make(n: int, dim: int = 5, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=(n, dim))

    return make


def sshd_failure(second: int, src: str = "203.0.113.50", user: str = "root", pid: int = 100) -> bytes:
    """One sshd failed-password syslog line at 2026-01-05 09:00:00 + `second`."""
    minute, sec = divmod(second, 60)
    return (f"Jan  5 09:{minute:02d}:{sec:02d} bastion sshd[{pid}]: "
            f"Failed password for {user} from {src} port {4000 + second} ssh2").encode()


@pytest.fixture
def parse() -> Callable[[bytes], Event]:
    """Factory: parse one raw payload the way training does (fixed `now`, no time bounds)."""

    def make(payload: bytes) -> Event:
        return parse_line(payload, now=PARSE_NOW, bounds=None)

    return make


@pytest.fixture
def brute_force_batch(parse: Callable[[bytes], Event]) -> Callable[..., tuple[list[Event], np.ndarray]]:
    """Factory: `brute_force_batch(n=30, src=...)` -> n sshd failures in 60 s, observed in time order, and their rows."""

    def make(n: int = 30, src: str = "203.0.113.50") -> tuple[list[Event], np.ndarray]:
        events = [parse(sshd_failure(i * 60 // n, src=src, pid=100 + i)) for i in range(n)]
        events.sort(key=lambda e: e.ts)
        store = WindowStore()
        rows = np.asarray([store.observe(e) for e in events], dtype=np.float64)
        return events, rows

    return make


@pytest.fixture(scope="session")
def cicids_dir() -> Path:
    """The folder of the small CICIDS2017 CSV excerpts."""
    return Path(__file__).resolve().parents[1] / "data" / "cicids2017"
