"""The champion/challenger gate: not worse than the active version on the same evaluation rows."""

from __future__ import annotations

from scoring.train import promotion_gate


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
