"""Scoring cost per event: batched (1,000) against one model call per event, same bundle and rows.

Run with `make bench-scoring`; writes var/bench/scoring.json and scoring.md. Not a test:
figures depend on the machine and its load, so they are reported, never asserted.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sklearn

from features.extract import WindowStore
from features.parsing import parse_line
from features.schema1 import WindowStoreV1
from features.simulation import ScenarioConfig, generate
from features.store import WindowStoreV2, batch_from_events, compile_kernels
from scoring.batch import score_batch
from tests.benchmarks._active import active_bundle

OUT = Path("var/bench")


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    bundle = active_bundle()
    if bundle is None:
        return 1
    now = datetime.now(UTC)
    raws = generate(ScenarioConfig(seed=7, duration_s=300))
    payloads = [r.payload for r in raws]

    t = time.perf_counter()
    events = [parse_line(p, now=now, bounds=None) for p in payloads]
    parse_s = time.perf_counter() - t
    events.sort(key=lambda e: e.ts)
    compile_kernels()
    t = time.perf_counter()
    rows = WindowStore().observe_all(events)  # as training runs it: event features and the v2 store
    feature_s = time.perf_counter() - t
    x = np.asarray(rows, dtype=np.float64)
    n = len(events)
    # Feature schema 1, the per-entity objects the stream and training ran on before v2: the "before".
    t = time.perf_counter()
    v1 = WindowStoreV1()
    for e in events:
        v1.observe(e)
    schema1_s = time.perf_counter() - t
    # The v2 window store alone on the same events, in batches of 1,000. Its columns are built
    # from Event objects here, in Python: v2's parsers are to build them directly.
    batches = [batch_from_events(events[i:i + 1000]) for i in range(0, n, 1000)]
    t = time.perf_counter()
    batch_from_events(events)
    columns_s = time.perf_counter() - t
    store = WindowStoreV2()
    t = time.perf_counter()
    for b in batches:
        store.observe(b)
    store_s = time.perf_counter() - t

    batch = 1000
    xb, eb = x[:batch], events[:batch]
    bundle.score(xb)  # warm-up
    batch_model = _timed(lambda: bundle.score(xb), 7)
    batch_full = _timed(lambda: score_batch(bundle, eb, xb, explain_min_risk=70), 7)
    k = 200  # per-event calls are slow: time a sample of rows
    per_event = _timed(lambda: [bundle.score(xb[i : i + 1]) for i in range(k)], 3)

    batch_us = statistics.median(batch_model) / batch * 1e6
    full_us = statistics.median(batch_full) / batch * 1e6
    single_us = statistics.median(per_event) / k * 1e6
    report = {
        "model": f"{bundle.name} {bundle.version}",
        "detector": bundle.anomaly.detector,
        "events": n,
        "parse_us_per_event": parse_s / n * 1e6,
        "features_us_per_event": feature_s / n * 1e6,
        "features_schema1_us_per_event": schema1_s / n * 1e6,
        "windows_v2_us_per_event": store_s / n * 1e6,
        "columns_from_events_us_per_event": columns_s / n * 1e6,
        "windows_v2_state_bytes_per_entity": store.stats().bytes_per_entity,
        "score_us_per_event_batch_1000": batch_us,
        "score_and_explain_us_per_event_batch_1000": full_us,
        "score_us_per_event_batch_1": single_us,
        "ratio_batch_vs_per_event": single_us / batch_us,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "sklearn": sklearn.__version__},
        "measured_at": now.isoformat(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scoring.json").write_text(json.dumps(report, indent=2))
    md = [
        "| stage | µs per event |", "|---|---|",
        f"| parse (raw bytes → Event) | {report['parse_us_per_event']:.1f} |",
        f"| windows + features (schema 2: the v2 store, as training and the stream run it) | "
        f"{report['features_us_per_event']:.1f} |",
        f"| windows + features, schema 1 (per-entity objects, before v2) | {report['features_schema1_us_per_event']:.1f} |",
        f"| role windows alone, v2 store (batches of 1,000) | {report['windows_v2_us_per_event']:.1f} |",
        f"| Event objects to v2 columns (Python; v2 parsers will make them) | "
        f"{report['columns_from_events_us_per_event']:.1f} |",
        f"| score, batch 1,000 (both models) | {batch_us:.1f} |",
        f"| score + explain threats, batch 1,000 | {full_us:.1f} |",
        f"| score, one call per event | {single_us:.1f} |",
        "", f"Batched scoring is {report['ratio_batch_vs_per_event']:.0f}x cheaper per event than per-event calls "
        f"({report['model']}, detector {report['detector']}, {n:,} generated events).",
    ]
    (OUT / "scoring.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
