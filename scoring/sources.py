"""Held-out figures per data source at the workers' threat threshold: does the risk scale mean the same everywhere?

A bundle trained on the generator and on real captures is evaluated on both at once; the
pooled figures hide a source the model does not know (a real DDoS it never flags drowns in
thousands of generated rows it gets right). Here each source's rows are scored alone, with the
figures an operator acts on: the share of each class at or above the threat threshold (a
threat event, and what healing sees), and how benign risk is spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.dataset import Dataset
from features.events import LABEL_BENIGN

from .bundle import ModelBundle

__all__ = ["RISK_BINS", "THREAT_THRESHOLD", "by_source", "markdown"]

THREAT_THRESHOLD = 70  # the workers' default STREAMGUARD_THREAT_THRESHOLD
RISK_BINS = (0, 40, 50, 60, 70, 90, 101)  # benign risk histogram edges (left-closed)


def by_source(bundle: ModelBundle, test: Dataset, segments: Sequence[tuple[str, int]],
              threshold: int = THREAT_THRESHOLD) -> dict[str, Any]:
    """Per source (consecutive row counts of `test`, in order): rows, per-class threat rate and label recall, benign
    false positives and risk spread."""
    if sum(n for _, n in segments) != len(test):
        raise ValueError(f"segments cover {sum(n for _, n in segments)} rows, the evaluation set has {len(test)}")
    out: dict[str, Any] = {"threshold": threshold, "sources": {}}
    start = 0
    for name, n in segments:
        if n == 0:
            continue
        rows = test.subset(range(start, start + n))
        start += n
        scores = bundle.score(rows.x)
        y = rows.y.astype(str)
        pred = np.asarray(scores.labels, dtype=str)
        threat = np.asarray(scores.risk) >= threshold
        classes = {}
        for lab in sorted(set(y)):
            m = y == lab
            classes[lab] = {"rows": int(m.sum()), "threat_rate": float(threat[m].mean()),
                            "label_recall": float((pred[m] == lab).mean())}
        src: dict[str, Any] = {"rows": n, "classes": classes}
        benign = y == LABEL_BENIGN
        if benign.any():
            risk = np.asarray(scores.risk)[benign]
            hist, _ = np.histogram(risk, bins=RISK_BINS)
            src["benign_false_positive_rate"] = float(threat[benign].mean())
            src["benign_risk_quantiles"] = {q: float(np.percentile(risk, int(q[1:]))) for q in ("p50", "p90", "p99")}
            src["benign_risk_histogram"] = {f"{lo}-{hi - 1}": int(c)
                                            for lo, hi, c in zip(RISK_BINS[:-1], RISK_BINS[1:], hist)}
        attacks = ~benign
        if attacks.any():
            src["attack_threat_rate"] = float(threat[attacks].mean())
        out["sources"][name] = src
    return out


def markdown(figures: dict[str, Any]) -> list[str]:
    """The report section for `by_source` figures."""
    thr = figures["threshold"]
    lines = ["## By source", "",
             f"Each source's held-out rows scored alone. *threats*: share with risk >= {thr} (the workers' default "
             "threat threshold); *label*: share given its own label.", ""]
    for name, src in figures["sources"].items():
        lines += [f"### {name} ({src['rows']:,} rows)", "", "| class | rows | threats | label |", "|---|---|---|---|"]
        for lab, c in src["classes"].items():
            lines.append(f"| {lab} | {c['rows']:,} | {c['threat_rate']:.4f} | {c['label_recall']:.4f} |")
        if "benign_false_positive_rate" in src:
            q = src["benign_risk_quantiles"]
            hist = ", ".join(f"{k}: {v:,}" for k, v in src["benign_risk_histogram"].items())
            fp = src["benign_false_positive_rate"]
            lines += ["", f"Benign: false positives **{fp:.4f}**; risk p50 {q['p50']:.0f}, p90 {q['p90']:.0f}, "
                      f"p99 {q['p99']:.0f}; rows by risk: {hist}."]
        lines.append("")
    return lines
