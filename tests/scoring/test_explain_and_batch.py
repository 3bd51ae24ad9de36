"""Batch scoring results and the reasoning sentences written for them."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from features.events import Event
from features.extract import EVENT_FEATURES, FEATURE_NAMES, FEATURES
from scoring.batch import ScoreResult, score_batch
from scoring.bundle import ModelBundle, severity_for
from scoring.explain import explain
from scoring.train import TrainingData

BruteForce = Callable[..., tuple[list[Event], np.ndarray]]
ATTACKER = "203.0.113.50"


def mixed_batch(scenario_data: TrainingData, brute_force_batch: BruteForce, n_benign: int = 150
                ) -> tuple[list[Event], np.ndarray]:
    """Held-out benign rows followed by a brute-force burst."""
    test = scenario_data.test
    benign = np.flatnonzero(test.y.astype(str) == "benign")[:n_benign]
    bf_events, bf_rows = brute_force_batch()
    events = [test.events[i] for i in benign] + bf_events
    return events, np.vstack([test.x[benign], bf_rows])


def counts_after_colon(sentence: str) -> list[float]:
    """The value a driver sentence reports ("<what>: <value>; normal is under <bound>")."""
    m = re.search(r": ([\d,]+(?:\.\d+)?); normal is under", sentence)
    return [float(m.group(1).replace(",", ""))] if m else []


@pytest.mark.parametrize("bundle_fixture", ["knn_bundle", "event_bundle"])
def test_score_batch_returns_one_result_per_event(bundle_fixture: str, scenario_data: TrainingData,
                                                  request: pytest.FixtureRequest) -> None:
    """N events in, N results out, each carrying the model identity and the bundle's named features."""
    bundle: ModelBundle = request.getfixturevalue(bundle_fixture)
    test = scenario_data.test
    n = 120
    results = score_batch(bundle, test.events[:n], test.x[:n])
    assert len(results) == n
    assert all(isinstance(r, ScoreResult) for r in results)
    cols = [FEATURE_NAMES.index(f) for f in bundle.feature_names]
    for i, r in enumerate(results):
        assert r.model_version == bundle.version and r.model_name == bundle.name
        assert list(r.features) == list(bundle.feature_names)
        assert list(r.features.values()) == test.x[i, cols].tolist()
        assert r.label in bundle.labels
        assert 0 <= r.risk <= 100 and r.severity == severity_for(r.risk)
        assert 0.0 <= r.anomaly_score <= 1.0 and 0.0 <= r.confidence <= 1.0
        assert r.reasoning and r.reasoning[0].startswith(f"classified as {r.label}")


def test_event_bundle_results_have_only_event_features(event_bundle: ModelBundle,
                                                       scenario_data: TrainingData) -> None:
    """A bundle on the event feature set reports those features and no window features."""
    r = score_batch(event_bundle, scenario_data.test.events[:1], scenario_data.test.x[:1])[0]
    assert tuple(r.features) == EVENT_FEATURES
    assert "src_failed_logins_1m" not in r.features


def test_score_batch_agrees_with_bundle_score(knn_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """The per-event results carry exactly the batch scores of the bundle."""
    test = scenario_data.test
    scores = knn_bundle.score(test.x[:200])
    results = score_batch(knn_bundle, test.events[:200], test.x[:200])
    assert [r.label for r in results] == scores.labels
    assert [r.risk for r in results] == scores.risk.tolist()
    assert [r.anomaly_score for r in results] == scores.anomaly.tolist()
    assert [r.confidence for r in results] == scores.confidence.tolist()


def test_brute_force_reasoning_names_source_and_count(knn_bundle: ModelBundle, brute_force_batch: BruteForce) -> None:
    """30 sshd failures in 60 s from one IP: the last one is an attack and the reasoning names the IP and a count >= 10."""
    events, rows = brute_force_batch(n=30, src=ATTACKER)
    assert [e.src_ip for e in events] == [ATTACKER] * 30
    assert rows[-1, FEATURE_NAMES.index("src_failed_logins_1m")] == 30
    result = score_batch(knn_bundle, events[-1:], rows[-1:])[0]
    assert result.label != "benign"
    assert result.risk >= 70
    naming = [s for s in result.reasoning if ATTACKER in s]
    assert naming, result.reasoning
    values = [v for s in naming for v in counts_after_colon(s)]
    assert values and max(values) >= 10, naming


def test_explain_min_risk_filters_reasoning(knn_bundle: ModelBundle, scenario_data: TrainingData,
                                            brute_force_batch: BruteForce) -> None:
    """Only rows at or above explain_min_risk get reasoning; the others get an empty tuple."""
    events, x = mixed_batch(scenario_data, brute_force_batch)
    results = score_batch(knn_bundle, events, x, explain_min_risk=50)
    risks = np.array([r.risk for r in results])
    assert (risks >= 50).any() and (risks < 50).any(), "the batch must straddle the threshold"
    for r in results:
        if r.risk >= 50:
            assert r.reasoning and r.reasoning[0].startswith("classified as")
        else:
            assert r.reasoning == ()
    # Filtering reasoning does not change any score.
    everything = score_batch(knn_bundle, events, x, explain_min_risk=0)
    assert [r.risk for r in everything] == risks.tolist()
    assert all(r.reasoning for r in everything)
    assert all(r.reasoning == () for r in score_batch(knn_bundle, events, x, explain_min_risk=101))


@pytest.mark.parametrize(("n_events", "n_rows"), [(3, 2), (2, 3), (0, 1), (1, 0)])
def test_mismatched_lengths_raise_value_error(knn_bundle: ModelBundle, scenario_data: TrainingData,
                                              n_events: int, n_rows: int) -> None:
    """Events and feature rows must pair up one to one."""
    test = scenario_data.test
    with pytest.raises(ValueError, match="events"):
        score_batch(knn_bundle, test.events[:n_events], test.x[:n_rows])


def test_explain_rows_argument_selects_rows(knn_bundle: ModelBundle, scenario_data: TrainingData,
                                            brute_force_batch: BruteForce) -> None:
    """explain returns one list of sentences per requested row, in the requested order."""
    events, x = mixed_batch(scenario_data, brute_force_batch, n_benign=20)
    scores = knn_bundle.score(x)
    everyone = explain(knn_bundle, x, events, scores)
    assert len(everyone) == len(events)
    picked = explain(knn_bundle, x, events, scores, rows=[len(events) - 1, 0])
    assert picked == [everyone[-1], everyone[0]]


def test_calm_benign_row_says_nothing_is_out_of_range(knn_bundle: ModelBundle, scenario_data: TrainingData) -> None:
    """A benign row at the benign median reads "no feature is outside its normal range"."""
    test = scenario_data.test
    x = test.x[:1].copy()
    x[0, knn_bundle.columns] = knn_bundle.baseline_median
    scores = knn_bundle.score(x)
    [sentences] = explain(knn_bundle, x, test.events[:1], scores)
    assert sentences[-1] == "no feature is outside its normal range"
    assert len(sentences) == 2


def test_an_attack_verdict_names_window_evidence_before_one_flows_fields(knn_bundle: ModelBundle,
                                                                         scenario_data: TrainingData) -> None:
    """Every attack row of the held-out seed whose drivers include a window feature leads with one; flag counts of
    one flow are never drivers."""
    from scoring.bundle import BatchScores

    test = scenario_data.test
    attacks = np.flatnonzero(test.y.astype(str) != "benign")[:400]
    x, events = test.x[attacks], [test.events[i] for i in attacks]
    scores: BatchScores = knn_bundle.score(x)
    window_names = [n for n in FEATURE_NAMES if n not in EVENT_FEATURES]
    descriptions = {f.name: f.description for f in FEATURES}
    led_by_window = checked = 0
    for i, sentences in enumerate(explain(knn_bundle, x, events, scores)):
        drivers = [s for s in sentences[1:] if "; normal is under" in s]
        assert not any(s.startswith(("RST flags", "SYN flags", "FIN flags")) for s in drivers), sentences
        if scores.labels[i] == "benign" or not drivers:
            continue
        is_window = [any(d.startswith(_generic(descriptions[n])) for n in window_names) for d in drivers]
        if any(is_window):
            checked += 1
            led_by_window += is_window[0]
            assert is_window == sorted(is_window, reverse=True), sentences
    assert checked > 50 and led_by_window == checked


def _generic(description: str) -> str:
    """The start of a feature's description before the entity is filled in ("... from this source")."""
    return description.split("this ")[0].rstrip()
