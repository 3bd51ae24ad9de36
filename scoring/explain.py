"""Reasoning sentences: the features that drove a decision, with their values and the normal range."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.events import LABEL_BENIGN, Event
from features.extract import EVENT_FEATURES, FEATURES

from .bundle import BatchScores, ModelBundle

__all__ = ["explain"]

_DESCRIPTIONS = {s.name: s.description for s in FEATURES}
_TOP = 3
_EVENT_ONLY = frozenset(EVENT_FEATURES)


def _fmt(x: float) -> str:
    if abs(x - round(x)) < 1e-9:
        return f"{int(round(x)):,}"
    return f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"


def _subject(description: str, event: Event) -> str:
    src = event.src_ip or event.src_host
    for phrase, value in (
        ("this source", src),
        ("this destination", event.dst_ip),
        ("this user", f"user {event.user}" if event.user else None),
        ("this service", f"service {event.service}" if event.service else None),
    ):
        if value and phrase in description:
            description = description.replace(phrase, value)
    return description


def explain(bundle: ModelBundle, x_full: np.ndarray, events: Sequence[Event], scores: BatchScores,
            rows: Sequence[int] | None = None) -> list[list[str]]:
    """Reasoning for the given rows (all by default): a verdict, then the drivers with numbers.

    Drivers are count-like features above their benign 99th percentile, strongest first
    (how far above normal, weighted by the classifier's reliance on the feature). For an
    attack verdict the window features come first: repeated behaviour of the source, the
    destination or the user is the evidence an analyst (and the healing policy) acts on, not
    one flow's field. Yes/no features, flow flag counts among them, that benign traffic almost
    never has (p99 = 0) are listed as indicators.
    """
    x = bundle.select(np.asarray(x_full, dtype=np.float64))
    med, p99 = bundle.baseline_median, bundle.baseline_p99
    scale = np.maximum(p99 - med, 1e-6)
    names = bundle.feature_names
    indicator = np.array([_is_indicator(n) for n in names])
    z = (x - med) / scale
    above = (x > p99) & (z > 1.0) & ~indicator
    weight = np.where(above, z * (bundle.importances + 1e-3), 0.0)
    windowed = np.array([n not in _EVENT_ONLY for n in names])
    rare_flag = indicator & (p99 <= 0.0)
    out: list[list[str]] = []
    for i in rows if rows is not None else range(len(events)):
        label = scores.labels[i]
        sentences = [
            f"classified as {label} with confidence {scores.confidence[i]:.2f}; anomaly score "
            f"{scores.anomaly[i]:.2f} (more unusual than {scores.anomaly[i] * 100:.0f}% of normal traffic)"
        ]
        # Sorted by weight, window features first for an attack verdict (a stable sort keeps the weight order).
        order = np.argsort(-weight[i], kind="stable")
        if label != LABEL_BENIGN:
            order = order[np.argsort(~windowed[order], kind="stable")]
        for j in [j for j in order if weight[i, j] > 0][:_TOP]:
            desc = _subject(_DESCRIPTIONS[names[j]], events[i])
            sentences.append(f"{desc}: {_fmt(x[i, j])}; normal is under {_fmt(_normal_bound(p99[j]))}")
        flags = [_DESCRIPTIONS[names[j]] for j in np.flatnonzero(rare_flag & (x[i] >= 1.0))]
        if flags:
            sentences.append("seldom seen in normal traffic: " + "; ".join(flags))
        if len(sentences) == 1:
            sentences.append("no feature is outside its normal range")
        out.append(sentences)
    return out


def _is_indicator(name: str) -> bool:
    """Yes/no features: event kind, outcome, method, flags of one event."""
    return name.startswith(("kind_", "auth_", "proto_")) or name in (
        "http_post", "http_login_path", "app_error", "dst_port_well_known",
        # Flag counts of one flow (0, 1, 2...): "RST flags in the flow: 1" read as a driver of a
        # DDoS verdict says nothing about the attack.
        "flow_fin", "flow_syn", "flow_rst", "flow_psh", "flow_ack")


def _normal_bound(p99: float) -> float:
    # Counts are integers: "under 3" reads better than "under 2.0" for a p99 of 2.
    return max(p99, 0.0) + (1.0 if abs(p99 - round(p99)) < 1e-9 else 0.0)
