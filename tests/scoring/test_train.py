"""Training runs: honest splits, the artifact and report they write, metadata and reproducibility;
the champion/challenger gate."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from features.events import LABEL_BENIGN
from features.extract import EVENT_FEATURES, FEATURE_NAMES
from features.parsing import read_cicflowmeter_csv
from scoring.errors import ScoringError
from scoring.train import (
    TrainingData,
    TrainingResult,
    file_data,
    generator_data,
    promotion_gate,
    run_training,
    train_bundle,
)

from .conftest import EVAL_SEEDS, TRAIN_SEEDS, TRAINED_AT, small_params

CIC_FILES = ("ddos_part1_head40.csv", "portscan_part1_head40.csv", "thursday_benign_head40.csv")
ROWS, TRAIN_ROWS = 40, 28  # each excerpt has 40 rows; the first 70 % (28) train


def read_events(path: Path) -> list:
    return [e for e in read_cicflowmeter_csv(path, now=datetime.now(UTC), bounds=None)]


def flow_key(e) -> tuple:
    """What identifies a CICFlowMeter row apart from its (possibly wall-clock) timestamp."""
    return (e.src_ip, e.src_port, e.dst_ip, e.dst_port, e.duration_s, e.fwd_packets, e.bwd_packets,
            e.fwd_bytes, e.bwd_bytes, e.label)


# --- data gathering and splits ---------------------------------------------------------------


@pytest.mark.parametrize(("seeds", "eval_seeds"), [((0, 1), (1, 2)), ((5,), (5,)), ((0, 1, 2), (3, 0))])
def test_generator_data_refuses_overlapping_seeds(seeds: tuple[int, ...], eval_seeds: tuple[int, ...]) -> None:
    """Evaluation seeds must be held out from training."""
    with pytest.raises(ScoringError, match="held out"):
        generator_data(seeds=seeds, duration_s=10, eval_seeds=eval_seeds)


def test_generator_data_describes_a_split_by_seed(scenario_data: TrainingData) -> None:
    """The session data record their seeds and hold attacks and benign rows on both sides."""
    d = scenario_data.description
    assert d["train_seeds"] == list(TRAIN_SEEDS) and d["eval_seeds"] == list(EVAL_SEEDS)
    assert d["split"] == "by seed"
    for part in (scenario_data.train, scenario_data.test):
        labels = set(part.y.astype(str))
        assert LABEL_BENIGN in labels and len(labels) >= 3
        assert part.x.shape == (len(part), len(FEATURE_NAMES))


@pytest.mark.parametrize("name", CIC_FILES)
def test_file_data_time_split_keeps_first_70_percent_of_a_file(cicids_dir: Path, name: str) -> None:
    """split='time': the first 70 % of a file, in event-time order, train; the rest evaluate."""
    path = cicids_dir / name
    data = file_data(flows=[path], split="time")
    assert (len(data.train), len(data.test)) == (TRAIN_ROWS, ROWS - TRAIN_ROWS)
    assert max(e.ts for e in data.train.events) <= min(e.ts for e in data.test.events)
    # The file's rows are already in time order: training gets exactly its first 28 rows.
    rows = read_events(path)
    assert [flow_key(e) for e in data.train.events] == [flow_key(e) for e in rows[:TRAIN_ROWS]]
    assert [flow_key(e) for e in data.test.events] == [flow_key(e) for e in rows[TRAIN_ROWS:]]
    assert data.description["split"] == "time"


def test_file_data_time_split_uses_event_time_not_file_order(cicids_dir: Path, tmp_path: Path) -> None:
    """A file whose rows are written newest first is still split at the 70 % point of event time."""
    lines = (cicids_dir / "portscan_part1_head40.csv").read_text().splitlines()
    reversed_file = tmp_path / "portscan_reversed.csv"
    reversed_file.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    data = file_data(flows=[reversed_file], split="time")
    all_ts = sorted(e.ts for e in read_events(reversed_file))
    assert all_ts[0] != all_ts[-1], "the excerpt must span several timestamps for this test to mean anything"
    assert sorted(e.ts for e in data.train.events) == all_ts[:TRAIN_ROWS]
    assert sorted(e.ts for e in data.test.events) == all_ts[TRAIN_ROWS:]
    assert max(e.ts for e in data.train.events) <= min(e.ts for e in data.test.events)


def test_file_data_time_split_is_per_file(cicids_dir: Path) -> None:
    """With several files, each one is split on its own: 28 train and 12 eval rows from every file."""
    paths = [cicids_dir / n for n in CIC_FILES]
    data = file_data(flows=paths, split="time")
    assert (len(data.train), len(data.test)) == (len(paths) * TRAIN_ROWS, len(paths) * (ROWS - TRAIN_ROWS))
    for i, path in enumerate(paths):
        train = data.train.events[i * TRAIN_ROWS:(i + 1) * TRAIN_ROWS]
        test = data.test.events[i * (ROWS - TRAIN_ROWS):(i + 1) * (ROWS - TRAIN_ROWS)]
        rows = read_events(path)
        assert [flow_key(e) for e in train] == [flow_key(e) for e in rows[:TRAIN_ROWS]], path.name
        assert [flow_key(e) for e in test] == [flow_key(e) for e in rows[TRAIN_ROWS:]], path.name
        assert max(e.ts for e in train) <= min(e.ts for e in test)
    assert len(data.description["files"]) == len(paths)


def test_file_data_file_split_needs_eval_files(cicids_dir: Path) -> None:
    """split='file' without evaluation files is refused."""
    with pytest.raises(ScoringError, match="eval"):
        file_data(flows=[cicids_dir / CIC_FILES[0]], split="file")


def test_file_data_file_split_holds_out_whole_files(cicids_dir: Path) -> None:
    """split='file' evaluates on the named files only and trains on all the others."""
    paths = [cicids_dir / n for n in CIC_FILES]
    data = file_data(flows=paths, split="file", eval_files=[paths[1]])
    assert (len(data.train), len(data.test)) == (2 * ROWS, ROWS)
    assert set(data.test.y.astype(str)) == {"port_scan"}
    assert set(data.train.y.astype(str)) == {"ddos", LABEL_BENIGN}


def test_file_data_rejects_unknown_split(cicids_dir: Path) -> None:
    """Only 'time' and 'file' splits exist (no random split that would leak windows)."""
    with pytest.raises(ScoringError, match="split"):
        file_data(flows=[cicids_dir / CIC_FILES[0]], split="random")


# --- a training run --------------------------------------------------------------------------


def test_run_training_writes_artifact_and_report(knn_run: TrainingResult) -> None:
    """bundle.pkl and the report (json, md, two PNGs) land in out_dir/<version>/."""
    folder = knn_run.artifact.parent
    assert knn_run.artifact.name == "bundle.pkl"
    assert folder.name == knn_run.bundle.version
    for rel in ("bundle.pkl", "report/report.json", "report/report.md",
                "report/confusion_matrix.png", "report/roc_pr.png"):
        f = folder / rel
        assert f.is_file() and f.stat().st_size > 0, rel
    for png in ("confusion_matrix.png", "roc_pr.png"):
        assert (folder / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert knn_run.report == folder / "report" / "report.md"


def test_run_training_version_names_time_and_data(knn_run: TrainingResult, scenario_data: TrainingData) -> None:
    """The version is the training time plus the start of the data fingerprint."""
    fp = scenario_data.train.fingerprint()
    assert knn_run.bundle.version == f"{TRAINED_AT:%Y%m%d-%H%M%S}-{fp[:8]}"


def test_run_training_sha256_matches_the_file(knn_run: TrainingResult) -> None:
    """The returned sha256 is the artifact's, and the markdown report quotes it."""
    assert knn_run.sha256 == hashlib.sha256(knn_run.artifact.read_bytes()).hexdigest()
    assert knn_run.sha256 in knn_run.report.read_text()


def test_report_json_has_the_metrics(knn_run: TrainingResult, scenario_data: TrainingData) -> None:
    """report.json: per-class precision/recall/f1, macro-F1, anomaly ROC AUC and false-positive rate."""
    report = json.loads((knn_run.artifact.parent / "report" / "report.json").read_text())
    clf, anomaly = report["classifier"], report["anomaly"]
    eval_labels = set(scenario_data.test.y.astype(str))
    assert eval_labels <= set(clf["per_class"])
    for label, m in clf["per_class"].items():
        for key in ("precision", "recall", "f1"):
            assert 0.0 <= m[key] <= 1.0, (label, key)
    assert sum(m["support"] for m in clf["per_class"].values()) == len(scenario_data.test)
    assert 0.5 < clf["macro_f1"] <= 1.0
    assert 0.5 < anomaly["roc_auc"] <= 1.0
    assert 0.0 <= anomaly["false_positive_rate"] <= 1.0
    assert report["rows"] == len(scenario_data.test)
    assert "_curves" not in report
    assert np.array(clf["confusion_matrix"]).sum() == len(scenario_data.test)


def test_bundle_metadata(knn_run: TrainingResult, scenario_data: TrainingData) -> None:
    """The bundle records data fingerprint, row count, parameters, training time and headline metrics."""
    meta = knn_run.bundle.metadata
    assert meta["data_fingerprint"] == scenario_data.train.fingerprint()
    assert meta["train_rows"] == len(scenario_data.train)
    assert meta["params"] == dict(small_params(anomaly_detector="knn"))
    assert meta["trained_at_ms"] == int(TRAINED_AT.timestamp() * 1000)
    assert sum(meta["train_class_counts"].values()) == len(scenario_data.train)
    assert meta["feature_set"] == "all"
    assert meta["metrics"]["macro_f1"] == pytest.approx(knn_run.metrics["classifier"]["macro_f1"])
    assert meta["evaluation"]["eval_seeds"] == list(EVAL_SEEDS)


def test_conformance_fixture_comes_from_the_evaluation_rows(knn_run: TrainingResult,
                                                            scenario_data: TrainingData) -> None:
    """The fixture the bundle carries is a two-class sample of held-out rows, full width."""
    b = knn_run.bundle
    assert b.fixture_x.shape == (len(b.fixture_y), len(FEATURE_NAMES))
    assert LABEL_BENIGN in set(b.fixture_y) and len(set(b.fixture_y)) >= 2
    test_rows = {row.tobytes() for row in scenario_data.test.x}
    assert all(row.tobytes() in test_rows for row in b.fixture_x)
    assert knn_run.conformance["fixture_attack_auc"] >= 0.9


def test_event_feature_set_bundle(event_bundle) -> None:
    """feature_set='event' trains on EVENT_FEATURES only."""
    assert event_bundle.feature_names == EVENT_FEATURES
    assert event_bundle.classifier.n_features_in_ == len(EVENT_FEATURES)
    assert event_bundle.metadata["feature_set"] == "event"


def test_unknown_feature_set_raises(scenario_data: TrainingData, tmp_path: Path) -> None:
    """Only the defined feature sets can be trained."""
    with pytest.raises(ScoringError, match="feature set"):
        run_training(scenario_data, name="x", out_dir=tmp_path, feature_set="windows-only")
    assert not any(tmp_path.iterdir())


def test_unknown_detector_raises(scenario_data: TrainingData) -> None:
    """train_bundle refuses an anomaly detector it does not know."""
    with pytest.raises(ScoringError, match="detector"):
        train_bundle(scenario_data.train, name="x", version="v", trained_at=TRAINED_AT,
                     params=small_params(anomaly_detector="lof"))


def test_training_needs_two_classes(scenario_data: TrainingData) -> None:
    """Benign rows alone cannot train a classifier."""
    benign = scenario_data.train.subset(np.flatnonzero(scenario_data.train.y.astype(str) == LABEL_BENIGN)[:200])
    with pytest.raises(ScoringError, match="two classes"):
        train_bundle(benign, name="x", version="v", trained_at=TRAINED_AT, params=small_params())


def test_training_needs_20_benign_rows(scenario_data: TrainingData) -> None:
    """Fewer than 20 benign rows cannot fit the anomaly model."""
    y = scenario_data.train.y.astype(str)
    idx = np.concatenate([np.flatnonzero(y == LABEL_BENIGN)[:19], np.flatnonzero(y != LABEL_BENIGN)[:100]])
    with pytest.raises(ScoringError, match="20 benign"):
        train_bundle(scenario_data.train.subset(idx), name="x", version="v", trained_at=TRAINED_AT,
                     params=small_params())


@pytest.mark.parametrize("detector", ["knn", "iforest"])
def test_training_is_reproducible(detector: str, scenario_data: TrainingData) -> None:
    """Two trainings on the same data with the same seed score the evaluation rows identically."""
    params = small_params(n_estimators=15, anomaly_detector=detector)
    a, b = (train_bundle(scenario_data.train, name="x", version="v", trained_at=TRAINED_AT, params=params)
            for _ in range(2))
    x = scenario_data.test.x
    sa, sb = a.score(x), b.score(x)
    assert np.array_equal(sa.anomaly, sb.anomaly)
    assert np.array_equal(sa.p_attack, sb.p_attack)
    assert np.array_equal(sa.risk, sb.risk)
    assert sa.labels == sb.labels
    assert np.array_equal(a.importances, b.importances)
    assert a.metadata["data_fingerprint"] == b.metadata["data_fingerprint"]


# --- the champion/challenger gate (not worse than the active version on the same rows) --------


def _m(f1: float, auc: float | None) -> dict:
    return {"classifier": {"macro_f1": f1}, "anomaly": {"roc_auc": auc}}


def test_equal_or_better_passes_and_says_why() -> None:
    ok, why = promotion_gate(_m(0.95, 0.99), _m(0.951, 0.99))
    assert ok and "0.9510 vs 0.9500" in why


def test_a_regression_beyond_the_tolerance_fails_naming_the_metric() -> None:
    ok, why = promotion_gate(_m(0.95, 0.99), _m(0.90, 0.995))
    assert not ok and "macro-F1 fell from 0.9500 to 0.9000" in why
    ok, why = promotion_gate(_m(0.95, 0.99), _m(0.95, 0.95))
    assert not ok and "ROC AUC" in why


def test_tolerance_and_missing_metrics() -> None:
    assert promotion_gate(_m(0.95, 0.99), _m(0.946, 0.99))[0]  # within 0.005
    assert not promotion_gate(_m(0.95, 0.99), _m(0.946, 0.99), max_regression=0.001)[0]
    assert promotion_gate(_m(0.95, None), _m(0.95, 0.9))[0]  # AUC not comparable: F1 decides
    assert promotion_gate(None, _m(0.1, 0.1)) == (True, "no champion to compare with")
