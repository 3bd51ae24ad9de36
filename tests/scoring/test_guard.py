"""The promotion guard: a new version against the previous one on the same events, rolled back past its bounds."""

from __future__ import annotations

import pytest

from scoring.challenger import Comparison
from scoring.errors import ScoringError
from scoring.guard import GuardConfig, PromotionGuard, label_psi

CFG = GuardConfig(watch_events=5000, min_events=500)


def batch(n: int = 250, *, new: int = 5, old: int = 5, agree: float = 1.0,
          new_labels: dict[str, int] | None = None, old_labels: dict[str, int] | None = None) -> Comparison:
    """One batch's comparison: the new version is the champion, the previous one the challenger."""
    return Comparison(events=n, same_label=n, same_decision=round(n * agree), champion_threats=new,
                      challenger_threats=old, abs_risk_diff_sum=0.0,
                      champion_labels=new_labels or {"benign": n - new, "brute_force": new},
                      challenger_labels=old_labels or {"benign": n - old, "brute_force": old})


def test_a_version_within_bounds_is_accepted_after_the_watch() -> None:
    guard = PromotionGuard("v2", "v1", CFG)
    for _ in range(19):
        assert guard.observe(batch(new=6, old=5)) is None
    verdict = guard.observe(batch(new=6, old=5))
    assert verdict is not None and verdict.outcome == "accepted" and verdict.reason == "within_bounds"
    assert "120 threats from v2 against 100 from v1 on the same 5000 events" in verdict.detail
    assert guard.observe(batch(new=250, old=0)) is verdict, "decided once, for good"


def test_a_version_that_flags_everything_goes_back_within_the_first_batches() -> None:
    guard = PromotionGuard("v2", "v1", CFG)
    assert guard.observe(batch(new=200, old=5, agree=0.2)) is None  # 250 events: too few to judge
    verdict = guard.observe(batch(new=200, old=5, agree=0.2))
    assert verdict.outcome == "rollback" and verdict.reason == "threats_high"
    assert "400 threats from v2 against 10 from v1" in verdict.detail


def test_a_version_that_sees_nothing_goes_back_too() -> None:
    verdict = None
    guard = PromotionGuard("v2", "v1", CFG)
    for _ in range(4):
        verdict = guard.observe(batch(new=0, old=30, agree=0.88))
    assert verdict.outcome == "rollback" and verdict.reason == "threats_low"


def test_a_handful_of_threats_decides_nothing() -> None:
    guard = PromotionGuard("v2", "v1", CFG)
    verdicts = [guard.observe(batch(new=1 if i % 4 == 0 else 0, old=0)) for i in range(20)]
    assert verdicts[-1].outcome == "accepted"  # 5 threats against none: within the slack of 20


def test_same_counts_on_different_events_is_a_decision_disagreement() -> None:
    guard = PromotionGuard("v2", "v1", CFG)
    guard.observe(batch(new=20, old=20, agree=0.9))
    verdict = guard.observe(batch(new=20, old=20, agree=0.9))
    assert verdict.outcome == "rollback" and verdict.reason == "decisions" and "90.0%" in verdict.detail


def test_a_changed_label_mix_goes_back() -> None:
    guard = PromotionGuard("v2", "v1", GuardConfig(min_events=500, min_decision_agreement=0.0))
    mixes = dict(new_labels={"benign": 150, "port_scan": 100}, old_labels={"benign": 150, "brute_force": 100})
    guard.observe(batch(new=10, old=10, **mixes))
    verdict = guard.observe(batch(new=10, old=10, **mixes))
    assert verdict.outcome == "rollback" and verdict.reason == "label_mix"


def test_label_psi() -> None:
    assert label_psi({"a": 10, "b": 10}, {"a": 5, "b": 5}) == 0.0
    assert label_psi({"a": 10}, {}) == 0.0
    assert label_psi({"a": 90, "b": 10}, {"a": 10, "b": 90}) > 1.0


@pytest.mark.parametrize("bad", [dict(min_events=0), dict(max_threat_ratio=0.5), dict(min_threat_ratio=0),
                                 dict(min_decision_agreement=1.5), dict(watch_events=-1)])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ScoringError):
        GuardConfig(**bad)
