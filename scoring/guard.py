"""After a promotion: the new version against the one it replaced, on the same events, until trusted or rolled back.

A version that passed its offline gate can still misbehave on live traffic: flag every host
(blocks the wrong hosts), or see nothing (blinds detection). For the first `watch_events`
events after a promotion the worker scores each batch with the previous version too, and
compares the two on the very same events (`challenger.compare`), so a change in the traffic
itself (an attack starting, the time of day) moves both models alike and is not blamed on the
new one. Past any bound below, the verdict is a rollback, with the reason in words:

- the new version's threats against the previous one's (each plus `threat_slack`, so a
  handful of threats decides nothing) above `max_threat_ratio` or below `min_threat_ratio`;
- the share of events on which the two agree whether it is a threat below
  `min_decision_agreement`;
- the PSI of the two label mixes above `max_label_psi`.

Bounds are checked from `min_events` on (a version flagging everything goes back within a few
batches), and a version that stays within them for `watch_events` is accepted. Pure: the
caller feeds comparisons and acts on the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .challenger import Comparison
from .errors import ScoringError

__all__ = ["GuardConfig", "PromotionGuard", "Verdict", "label_psi"]


@dataclass(frozen=True)
class GuardConfig:
    """How long a promoted version is watched and how far it may stray from the one it replaced."""

    watch_events: int = 5_000  # 0: promotions are not watched
    min_events: int = 500
    max_threat_ratio: float = 3.0
    min_threat_ratio: float = 1 / 3
    threat_slack: int = 20
    min_decision_agreement: float = 0.97
    max_label_psi: float = 0.25

    def __post_init__(self) -> None:
        if (self.watch_events < 0 or self.min_events < 1 or self.threat_slack < 0
                or not 0 < self.min_threat_ratio <= 1 <= self.max_threat_ratio
                or not 0 <= self.min_decision_agreement <= 1 or self.max_label_psi <= 0):
            raise ScoringError(f"invalid promotion guard settings: {self}")


@dataclass(frozen=True)
class Verdict:
    """What the guard decided: "rollback" (with a reason code and words) or "accepted"."""

    outcome: str  # "rollback" | "accepted"
    reason: str  # threats_high, threats_low, decisions, label_mix, within_bounds (bounded: a metric label)
    detail: str


def label_psi(a: dict[str, int], b: dict[str, int], eps: float = 1e-4) -> float:
    """Population stability index between two label counts (0: same mix; > 0.25: a large shift)."""
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return 0.0
    total = 0.0
    for label in set(a) | set(b):
        pa, pb = max(a.get(label, 0) / na, eps), max(b.get(label, 0) / nb, eps)
        total += (pa - pb) * math.log(pa / pb)
    return total


@dataclass
class PromotionGuard:
    """The watch over one promotion: `version` (serving) against `previous` on the same events."""

    version: str
    previous: str
    cfg: GuardConfig = field(default_factory=GuardConfig)
    seen: Comparison = field(default_factory=Comparison)  # champion: the new version; challenger: the previous
    verdict: Verdict | None = None

    def observe(self, c: Comparison) -> Verdict | None:
        """Add one batch's comparison (new version as champion); the verdict once there is one (then always it)."""
        if self.verdict is not None:
            return self.verdict
        self.seen.add(c)
        s, cfg = self.seen, self.cfg
        if s.events < cfg.min_events:
            return None
        new, old = s.champion_threats + cfg.threat_slack, s.challenger_threats + cfg.threat_slack
        ratio = new / old
        counts = (f"{s.champion_threats} threats from {self.version} against {s.challenger_threats} from "
                  f"{self.previous} on the same {s.events} events")
        psi = label_psi(s.champion_labels, s.challenger_labels)
        if ratio > cfg.max_threat_ratio:
            self.verdict = Verdict("rollback", "threats_high", f"{counts} (x{ratio:.2f} > {cfg.max_threat_ratio:g})")
        elif ratio < cfg.min_threat_ratio:
            self.verdict = Verdict("rollback", "threats_low", f"{counts} (x{ratio:.2f} < {cfg.min_threat_ratio:.2f})")
        elif s.decision_agreement < cfg.min_decision_agreement:
            self.verdict = Verdict("rollback", "decisions", f"the two agree on {s.decision_agreement:.1%} of threat "
                                   f"decisions (< {cfg.min_decision_agreement:.0%}); {counts}")
        elif psi > cfg.max_label_psi:
            self.verdict = Verdict("rollback", "label_mix", f"label mix PSI {psi:.3f} (> {cfg.max_label_psi:g}); "
                                   f"{counts}")
        elif s.events >= cfg.watch_events:
            self.verdict = Verdict("accepted", "within_bounds", f"{counts}; decisions agree on "
                                   f"{s.decision_agreement:.1%}, label mix PSI {psi:.3f}")
        return self.verdict
