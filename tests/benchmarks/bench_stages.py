"""The worker's stage code in one process, no broker: ingest, every entity hop, scoring, µs per event.

Run with `python -m tests.benchmarks.bench_stages [registry]`; writes var/bench/stages.json.
What it leaves out is Kafka and Faust: the difference between these figures and the
pipeline's events/s is the frame's cost. Not a test: figures are reported, never asserted.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from features.parsing import TimeBounds
from features.simulation import ScenarioConfig, generate
from features.store import compile_kernels
from features.windows import WindowConfig
from streams.agents.ingest import Ingested, ingest
from streams.agents.score import score_messages
from streams.agents.windows import PartitionWindows, apply_hops, prepare_hop
from streams.internal import Outbox, position, unpack
from tests.benchmarks._active import active_bundle

OUT = Path("var/bench")
PARTITIONS = 8
BATCH = 1000


def main() -> int:
    bundle = active_bundle()
    if bundle is None:
        return 1
    compile_kernels()
    raws = sorted(generate(ScenarioConfig(seed=7, duration_s=300)), key=lambda r: r.ts_ms)
    now = datetime.now(UTC)
    bounds = TimeBounds(max_future=timedelta(days=3650), not_before=datetime(2000, 1, 1, tzinfo=UTC))
    n = len(raws)
    stores = {p: PartitionWindows.empty(WindowConfig()) for p in range(PARTITIONS)}
    ingest_s = hop_s = score_s = 0.0
    hops = 0
    for start in range(0, n, BATCH):
        chunk = raws[start:start + BATCH]
        t = time.perf_counter()
        box = Outbox(PARTITIONS)
        for off, r in enumerate(chunk, start):
            got = ingest(r.payload, input_kind=r.topic, topic=r.topic,
                         partition=0, offset=off, now=now, bounds=bounds)
            if isinstance(got, Ingested):
                box.add(got.hop, 0)
        messages = box.drain()
        ingest_s += time.perf_counter() - t
        to_score: list[bytes] = []
        t = time.perf_counter()
        offset = 0
        while messages:
            box = Outbox(PARTITIONS)
            by_part: dict[int, list] = {}
            for kind, part, value in messages:
                if kind == "score":
                    to_score.append(value)
                    continue
                offset += 1
                for index, msg in enumerate(unpack(value)):
                    by_part.setdefault(part, []).append((prepare_hop(msg), (f"hops:{part}", position(offset, index))))
            for part, items in by_part.items():
                hops += len(items)
                for nxt, _ in apply_hops(stores[part], items):
                    box.add(nxt, part)
            messages = box.drain()
        hop_s += time.perf_counter() - t
        t = time.perf_counter()
        batch = [m for v in to_score for m in unpack(v)]
        score_messages(batch, bundle, threshold=70, emit_scored=False, now=now)
        score_s += time.perf_counter() - t
    report = {"events": n, "hops": hops, "ingest_us_per_event": ingest_s / n * 1e6,
              "hops_us_per_event": hop_s / n * 1e6, "hop_us_per_hop": hop_s / max(hops, 1) * 1e6,
              "score_us_per_event": score_s / n * 1e6,
              "total_us_per_event": (ingest_s + hop_s + score_s) / n * 1e6, "model": bundle.version,
              "measured_at": now.isoformat()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "stages.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
