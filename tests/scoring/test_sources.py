"""Held-out figures per data source: each source scored alone at the workers' threat threshold."""

from __future__ import annotations

import pytest

from scoring.sources import RISK_BINS, THREAT_THRESHOLD, by_source
from scoring.train import TrainingResult


def test_a_training_run_reports_its_sources_alone(knn_run: TrainingResult, scenario_data) -> None:
    figures = knn_run.metrics["by_source"]
    assert figures["threshold"] == THREAT_THRESHOLD
    (name,) = figures["sources"]
    src = figures["sources"][name]
    assert name == "scenario generator" and src["rows"] == len(scenario_data.test)
    assert sum(c["rows"] for c in src["classes"].values()) == src["rows"]
    assert sum(src["benign_risk_histogram"].values()) == src["classes"]["benign"]["rows"]
    assert len(src["benign_risk_histogram"]) == len(RISK_BINS) - 1
    assert src["benign_false_positive_rate"] < 0.05 and src["attack_threat_rate"] > 0.8
    assert "## By source" in knn_run.report.read_text()


def test_sources_split_the_rows_in_order(knn_bundle, scenario_data) -> None:
    test = scenario_data.test
    half = len(test) // 2
    figures = by_source(knn_bundle, test, [("first", half), ("second", len(test) - half)])
    assert [s["rows"] for s in figures["sources"].values()] == [half, len(test) - half]
    whole = by_source(knn_bundle, test, [("all", len(test))])["sources"]["all"]
    parts = figures["sources"].values()
    benign = sum(p["classes"]["benign"]["rows"] * p["benign_false_positive_rate"] for p in parts)
    assert benign == pytest.approx(whole["classes"]["benign"]["rows"] * whole["benign_false_positive_rate"])
    with pytest.raises(ValueError, match="segments cover"):
        by_source(knn_bundle, test, [("short", len(test) - 1)])
