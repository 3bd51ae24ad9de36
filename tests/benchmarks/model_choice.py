"""Classifier and anomaly-model sizes compared on quality and scoring cost: generator seeds and CICIDS2017.

Run `python -m tests.benchmarks.model_choice [CICIDS_DIR]`; writes var/bench/model_choice.json. Each
candidate is trained and evaluated the way `streamguard train` does it (held-out generator seeds;
the last 30 % of each CICIDS2017 file in event time), then timed scoring batches of 1,000 with one
BLAS thread. It decided the default `TrainParams` (docs/models.md). Figures, never assertions.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scoring.train import TrainParams, file_data, generator_data, run_training

OUT = Path("var/bench")
CANDIDATES = {
    "forest 150, kNN 4096 (before)": {"n_estimators": 150, "max_depth": None, "anomaly_max_reference": 4096},
    "forest 40 depth 16, kNN 1024": {"n_estimators": 40, "max_depth": 16, "anomaly_max_reference": 1024},
    "forest 60 depth 20, kNN 2048": {"n_estimators": 60, "max_depth": 20, "anomaly_max_reference": 2048},
}


def _us_per_event(bundle, x: np.ndarray) -> float:
    xb = x[:1000]
    with threadpool_limits(1):
        bundle.score(xb)
        best = min(_timed(bundle.score, xb) for _ in range(5))
    return best / len(xb) * 1e6


def _timed(fn, arg) -> float:
    t = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t


def _summary(metrics: dict, test_y: np.ndarray) -> dict:
    c, a = metrics["classifier"], metrics["anomaly"]
    return {"macro_f1": c["macro_f1"], "recall_by_class": {k: v["recall"] for k, v in c["per_class"].items()},
            "anomaly_false_positive_rate": a["false_positive_rate"], "anomaly_detection_rate": a["detection_rate"],
            "attack_roc_auc": c.get("attack_roc_auc")}


def main() -> int:
    cicids = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/cicids2017")
    sources = {"generator": (generator_data(), "all")}
    files = [cicids / f for f in ("ddos_part1.csv", "portscan_part1.csv", "thursday_benign.csv")]
    if all(f.exists() for f in files):
        sources["cicids2017"] = (file_data(flows=files, split="time"), "event")
    report: dict = {}
    for source, (data, feature_set) in sources.items():
        for name, overrides in CANDIDATES.items():
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                res = run_training(data, name="choice", out_dir=Path(tmp), feature_set=feature_set,
                                   params=TrainParams.defaults(**overrides))
                train_s = time.perf_counter() - t
                row = _summary(res.metrics, data.test.y)
                row["train_s"] = train_s
                row["score_us_per_event_batch_1000"] = _us_per_event(res.bundle, data.test.x)
                report.setdefault(source, {})[name] = row
                print(source, name, json.dumps({k: v for k, v in row.items() if k != "recall_by_class"}), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "model_choice.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
