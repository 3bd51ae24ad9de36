"""Champion and challenger: which model serves an entity (A/B), and how two models' verdicts compare.

A challenger scores the same batches as the serving model (the champion). In shadow mode its
verdicts only feed the comparison; with an A/B fraction f, the entities whose stable share
(a hash of the entity, not of the event) is below f are served by the challenger for real, so
one host's verdicts and actions always come from one model while the split holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from .batch import ScoreResult

__all__ = ["Comparison", "ab_share", "compare", "served_by_challenger"]


def ab_share(entity: str) -> float:
    """A stable number in [0, 1) for an entity: the same on every worker and every run."""
    digest = hashlib.blake2b(entity.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def served_by_challenger(entity: str, fraction: float) -> bool:
    """Whether the challenger serves this entity under an A/B split of `fraction` (0: never, 1: always)."""
    return fraction > 0.0 and ab_share(entity) < fraction


@dataclass(slots=True)
class Comparison:
    """Champion against challenger on the same events (counts, so batches add up)."""

    events: int = 0
    same_label: int = 0
    same_decision: int = 0  # both at or above the threshold, or both below
    champion_threats: int = 0
    challenger_threats: int = 0
    abs_risk_diff_sum: float = 0.0
    champion_labels: dict[str, int] = field(default_factory=dict)
    challenger_labels: dict[str, int] = field(default_factory=dict)

    def add(self, other: Comparison) -> None:
        self.events += other.events
        self.same_label += other.same_label
        self.same_decision += other.same_decision
        self.champion_threats += other.champion_threats
        self.challenger_threats += other.challenger_threats
        self.abs_risk_diff_sum += other.abs_risk_diff_sum
        for mine, theirs in ((self.champion_labels, other.champion_labels),
                             (self.challenger_labels, other.challenger_labels)):
            for label, n in theirs.items():
                mine[label] = mine.get(label, 0) + n

    @property
    def label_agreement(self) -> float:
        """Share of events both models give the same label (1.0 when there are none)."""
        return self.same_label / self.events if self.events else 1.0

    @property
    def decision_agreement(self) -> float:
        """Share of events on which both models agree whether it is a threat."""
        return self.same_decision / self.events if self.events else 1.0

    @property
    def mean_abs_risk_diff(self) -> float:
        return self.abs_risk_diff_sum / self.events if self.events else 0.0


def compare(champion: Sequence[ScoreResult], challenger: Sequence[ScoreResult], *, threshold: int) -> Comparison:
    """Compare two models' results on the same events, in the same order."""
    if len(champion) != len(challenger):
        raise ValueError(f"{len(champion)} champion results but {len(challenger)} challenger results")
    c = Comparison(events=len(champion))
    for a, b in zip(champion, challenger):
        a_threat, b_threat = a.risk >= threshold, b.risk >= threshold
        c.same_label += a.label == b.label
        c.same_decision += a_threat == b_threat
        c.champion_threats += a_threat
        c.challenger_threats += b_threat
        c.abs_risk_diff_sum += abs(a.risk - b.risk)
        c.champion_labels[a.label] = c.champion_labels.get(a.label, 0) + 1
        c.challenger_labels[b.label] = c.challenger_labels.get(b.label, 0) + 1
    return c
