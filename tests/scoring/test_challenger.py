"""Champion/challenger helpers: the stable A/B share and the comparison of two models' verdicts."""

from __future__ import annotations

import pytest

from scoring.batch import ScoreResult
from scoring.challenger import Comparison, ab_share, compare, served_by_challenger


def result(label: str, risk: int, version: str = "v1") -> ScoreResult:
    return ScoreResult(anomaly_score=risk / 100, label=label, confidence=0.9, risk=risk, severity="low",
                       reasoning=(), features={}, model_name="sg", model_version=version)


def test_the_ab_share_is_stable_and_spreads_entities_evenly() -> None:
    entities = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(20_000)]
    shares = [ab_share(e) for e in entities]
    assert shares == [ab_share(e) for e in entities]  # no per-process salt: every worker agrees
    assert all(0.0 <= s < 1.0 for s in shares)
    for fraction in (0.1, 0.25, 0.5, 0.9):
        served = sum(served_by_challenger(e, fraction) for e in entities) / len(entities)
        assert served == pytest.approx(fraction, abs=0.015), fraction


def test_fraction_zero_never_and_one_always_serves_the_challenger() -> None:
    for entity in ("203.0.113.7", "root", "", "ünïcode-user", "\udcff"):
        assert not served_by_challenger(entity, 0.0)
        assert served_by_challenger(entity, 1.0)


def test_a_larger_fraction_keeps_the_entities_of_a_smaller_one() -> None:
    # Raising the split moves entities one way only: nobody flips back to the champion.
    entities = [f"user{i}" for i in range(2000)]
    small = {e for e in entities if served_by_challenger(e, 0.2)}
    large = {e for e in entities if served_by_challenger(e, 0.6)}
    assert small < large


def test_compare_counts_labels_decisions_and_risk_gaps() -> None:
    champion = [result("benign", 10), result("brute_force", 90), result("port_scan", 75), result("benign", 69)]
    challenger = [result("benign", 20, "v2"), result("brute_force", 60, "v2"), result("ddos", 80, "v2"),
                  result("benign", 70, "v2")]
    c = compare(champion, challenger, threshold=70)
    assert (c.events, c.same_label, c.same_decision) == (4, 3, 2)
    assert (c.champion_threats, c.challenger_threats) == (2, 2)
    assert c.mean_abs_risk_diff == pytest.approx((10 + 30 + 5 + 1) / 4)
    assert c.champion_labels == {"benign": 2, "brute_force": 1, "port_scan": 1}
    assert c.challenger_labels == {"benign": 2, "brute_force": 1, "ddos": 1}
    assert c.label_agreement == 0.75 and c.decision_agreement == 0.5


def test_comparisons_add_up_across_batches() -> None:
    a = compare([result("benign", 10)], [result("ddos", 90)], threshold=70)
    b = compare([result("ddos", 95), result("benign", 5)], [result("ddos", 91), result("benign", 1)], threshold=70)
    total = Comparison()
    total.add(a)
    total.add(b)
    assert (total.events, total.same_label, total.same_decision) == (3, 2, 2)
    assert total.challenger_labels == {"ddos": 2, "benign": 1}
    assert Comparison().label_agreement == 1.0 and Comparison().mean_abs_risk_diff == 0.0


def test_compare_refuses_results_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="1 champion results but 0 challenger"):
        compare([result("benign", 1)], [], threshold=70)
