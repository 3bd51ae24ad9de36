"""What a worker serves, with one owner: the bundle, a challenger, the threshold, the healing policy.

The score and heal stages read it for every batch; operator commands (`streams.operations`)
change it only through its methods. A change takes effect from the next batch on: a batch
reads the bundle once.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from features.extract import FEATURE_NAMES
from scoring.bundle import ModelBundle
from scoring.challenger import Comparison
from scoring.drift import DriftMonitor
from scoring.guard import GuardConfig, PromotionGuard
from scoring.healing import PolicyConfig, validate

from .control import HealingPolicy
from .policy import read_policy_file, rules_from_document, with_rules

if TYPE_CHECKING:
    from .metrics import Metrics
    from .settings import Settings

__all__ = ["Serving"]


class Serving:
    """The live serving state of one worker."""

    def __init__(self, settings: Settings, bundle: ModelBundle, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.challenger: ModelBundle | None = None  # scores beside the served bundle (shadow, A/B)
        self.ab_fraction = 0.0
        self.comparison = Comparison()  # champion against challenger since the challenger started
        self.drift: DriftMonitor | None = None
        self.last_retrain_request_monotonic: float | None = None
        self.serve(bundle)
        self.set_challenger(None)
        self.threshold = settings.threat_threshold  # operators may change it through the control topic
        self.policy = PolicyConfig(dry_run=settings.dry_run, allowlist=settings.allowlist_cidrs,
                                   max_blocks_per_minute=settings.max_blocks_per_minute)
        validate(self.policy)
        self.policy_doc: HealingPolicy | None = None  # one loaded through the control topic, kept across restarts
        if settings.policy_file is not None:
            _, rules = read_policy_file(settings.policy_file)
            self.policy = with_rules(self.policy, rules)

    def load_policy(self, doc: HealingPolicy) -> str:
        """Use the rules of a policy document from the next threat on; raises PolicyFileError and keeps the old."""
        rules = rules_from_document(doc)
        self.policy = with_rules(self.policy, rules)
        self.policy_doc = doc
        return rules.summary()

    def serve(self, bundle: ModelBundle, *, watch_against: ModelBundle | None = None) -> None:
        """Serve `bundle` from the next batch on, with fresh drift counts; watched against another version if given."""
        self.guard: PromotionGuard | None = None
        self.guarded_by: ModelBundle | None = None  # the version a promoted one replaced, scored beside it
        s = self.settings
        if watch_against is not None and s.promotion_watch_events > 0 and watch_against.version != bundle.version:
            cfg = GuardConfig(watch_events=s.promotion_watch_events,
                              min_events=max(1, min(500, s.promotion_watch_events)),
                              max_threat_ratio=s.promotion_max_threat_ratio,
                              min_threat_ratio=1 / s.promotion_max_threat_ratio,
                              min_decision_agreement=s.promotion_min_decision_agreement,
                              max_label_psi=s.promotion_max_label_psi)
            self.guard = PromotionGuard(bundle.version, watch_against.version, cfg)
            self.guarded_by = watch_against
        self.bundle = bundle
        self.metrics.model.info({"name": bundle.name, "version": bundle.version,
                                 "feature_schema_version": bundle.feature_schema_version})
        ref = bundle.metadata.get("drift_reference")
        self.drift = DriftMonitor(ref, FEATURE_NAMES, window=self.settings.drift_window_events) if ref else None

    def end_watch(self) -> None:
        """Stop scoring the previous version beside the served one (the guard has its verdict)."""
        self.guard, self.guarded_by = None, None

    def set_challenger(self, bundle: ModelBundle | None, fraction: float = 0.0) -> None:
        """Run `bundle` beside the served one from the next batch on (None: stop); A/B for `fraction` of entities."""
        if bundle is None or self.challenger is None or bundle.version != self.challenger.version:
            self.comparison = Comparison()
            for compared in ("label", "decision"):
                self.metrics.challenger_agreement.labels(compared).set(1.0)
        self.challenger = bundle
        self.ab_fraction = fraction if bundle is not None else 0.0
        self.metrics.challenger.info({"version": bundle.version if bundle else "none",
                                      "ab_fraction": f"{self.ab_fraction:g}"})

    @property
    def challenger_version(self) -> str | None:
        """The challenger's version, if one runs."""
        return self.challenger.version if self.challenger is not None else None

    def set_threshold(self, value: int) -> None:
        """Risk at or above which a scored event is a threat, from the next batch on."""
        self.threshold = value

    def change_policy(self, **changes: Any) -> None:
        """Replace fields of the healing policy (`dry_run`, `paused`, `allowlist`)."""
        self.policy = dataclasses.replace(self.policy, **changes)

    def challenger_state(self) -> dict[str, Any] | None:
        """The challenger and how it compares, for /health and `status`."""
        if self.challenger is None:
            return None
        c = self.comparison
        return {"version": self.challenger.version, "ab_fraction": self.ab_fraction, "events": c.events,
                "label_agreement": round(c.label_agreement, 4), "decision_agreement": round(c.decision_agreement, 4),
                "champion_threats": c.champion_threats, "challenger_threats": c.challenger_threats,
                "mean_abs_risk_diff": round(c.mean_abs_risk_diff, 2)}

    def status(self) -> dict[str, Any]:
        """What an operator asks `status` for."""
        return {"model": {"name": self.bundle.name, "version": self.bundle.version},
                "challenger": self.challenger_state(),
                "threat_threshold": self.threshold, "dry_run": self.policy.dry_run, "paused": self.policy.paused,
                "allowlist": list(self.policy.allowlist), "policy_version": self.policy.version,
                "promotion_watch": None if self.guard is None else {
                    "version": self.guard.version, "against": self.guard.previous, "events": self.guard.seen.events,
                    "of": self.guard.cfg.watch_events}}
