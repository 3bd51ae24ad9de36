"""Evaluation report beside a bundle: JSON, markdown, confusion matrix and ROC/PR plots as PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .sources import markdown as source_markdown

__all__ = ["write_report"]


def _plots(folder: Path, metrics: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    written = []
    cm = np.asarray(metrics["classifier"]["confusion_matrix"])
    labels = metrics["classifier"]["labels"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Attack classifier: confusion matrix")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    written.append("confusion_matrix.png")

    curves = metrics.get("_curves")
    if curves is not None and curves["is_attack"].any() and (~curves["is_attack"]).any():
        y = curves["is_attack"]
        fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
        for key, name in (("anomaly", "anomaly model"), ("p_attack", "classifier P(attack)")):
            fpr, tpr, _ = roc_curve(y, curves[key])
            roc_ax.plot(fpr, tpr, label=name)
            prec, rec, _ = precision_recall_curve(y, curves[key])
            pr_ax.plot(rec, prec, label=name)
        thr_fpr = metrics["anomaly"]["false_positive_rate"]
        thr_tpr = metrics["anomaly"]["detection_rate"]
        roc_ax.scatter([thr_fpr], [thr_tpr], color="red", zorder=3,
                       label=f"anomaly threshold {metrics['anomaly']['threshold']}")
        roc_ax.plot([0, 1], [0, 1], ls=":", color="grey")
        roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (attack vs benign)")
        pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (attack vs benign)")
        roc_ax.legend(loc="lower right")
        pr_ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(folder / "roc_pr.png", dpi=110)
        plt.close(fig)
        written.append("roc_pr.png")
    return written


def _markdown(title: str, metrics: dict[str, Any], context: dict[str, Any], pngs: list[str]) -> str:
    c, a = metrics["classifier"], metrics["anomaly"]
    lines = [f"# {title}", ""]
    for k, v in context.items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", "## Attack classifier", "", f"macro-F1 **{c['macro_f1']:.4f}**, accuracy {c['accuracy']:.4f}"
              + (f", ROC AUC of P(attack) {c['attack_roc_auc']:.4f}" if "attack_roc_auc" in c else ""), "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, m in c["per_class"].items():
        lines.append(f"| {lab} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |")
    lines += ["", "Confusion matrix (rows true, columns predicted): " + ", ".join(c["labels"]), "", "```"]
    lines += [" ".join(f"{v:7d}" for v in row) for row in c["confusion_matrix"]]
    lines += ["```", "", "## Anomaly model (trained on benign rows only)", ""]
    if "roc_auc" in a:
        lines.append(f"- ROC AUC (attack vs benign): **{a['roc_auc']:.4f}**; "
                     f"average precision {a['average_precision']:.4f}")
    if "oracle_detection_at_1pct_fpr" in a:
        lines.append(f"- best detection at <= 1 % false positives with a threshold picked on these rows (oracle): "
                     f"{a['oracle_detection_at_1pct_fpr']:.4f}")
    if a["false_positive_rate"] is not None:
        lines.append(f"- at threshold {a['threshold']}: false-positive rate **{a['false_positive_rate']:.4f}**")
    if a["detection_rate"] is not None:
        lines.append(f"- at threshold {a['threshold']}: attacks flagged **{a['detection_rate']:.4f}**")
    for lab, r in a.get("detection_rate_by_label", {}).items():
        lines.append(f"  - {lab}: {r:.4f}")
    if "by_source" in metrics:
        lines += [""] + source_markdown(metrics["by_source"])
    lines += [""] + [f"![{p}]({p})" for p in pngs]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, title: str, metrics: dict[str, Any], context: dict[str, Any]) -> Path:
    """Write report.json, report.md and the plots; returns the markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    pngs = _plots(folder, metrics)
    public = {k: v for k, v in metrics.items() if not k.startswith("_")}
    (folder / "report.json").write_text(json.dumps({"title": title, "context": context, **public},
                                                   indent=2, default=str))
    md = folder / "report.md"
    md.write_text(_markdown(title, public, context, pngs))
    return md
