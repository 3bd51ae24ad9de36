"""Prototype for the stream core v2 design note: offline figures per stage, today's code against candidates.

Run `python -m tests.benchmarks.proto_core_v2` (needs numba in the venv: `pip install numba==0.68.1`).
Writes var/bench/proto_core_v2.json. Not a test and not the store: a measurement that decided
docs/design/core-v2.md. Figures depend on the machine and its load; they are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from features.entities import entity_keys, is_failure, suspicious_url
from features.events import Event, EventKind
from features.extract import FEATURE_NAMES, event_features
from features.parsing import parse_line
from features.schema1 import SCHEMA1_FEATURES
from features.schema1 import WindowStoreV1 as WindowStore  # "today" when the prototype was measured
from features.simulation import ScenarioConfig, generate

OUT = Path("var/bench")
LATE = 300_000


def _best(fn, repeat: int = 3) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


# ---- columns: what a v2 parser would hand over (built here from Event objects) ----------------

def _h(s: str) -> int:
    # Stand-in for a parser-side 64-bit hash of a distinct value (the store never sees the value).
    return hash(s) & 0x7FFF_FFFF_FFFF_FFFF


def columns(events: list[Event]) -> dict[str, np.ndarray]:
    """Per-event columns and interned entity ids, in Python (the cost v2 moves into the parser)."""
    ids: dict[str, int] = {}
    n = len(events)
    cols = {k: np.full(n, -1, np.int64) for k in ("src", "dst", "user", "service")}
    ts = np.empty(n, np.int64)
    fail = np.zeros(n, np.int8)
    status = np.full(n, -1, np.int32)
    err = np.zeros(n, np.int8)
    atk = np.zeros(n, np.int8)
    rt = np.full(n, np.nan)
    flow = np.zeros(n, np.int8)
    pk = np.zeros(n)
    by = np.zeros(n)
    hv = {k: np.zeros(n, np.int64) for k in ("user", "port", "dip", "path", "srcv")}
    for i, e in enumerate(events):
        ts[i] = e.ts_ms
        for role, key in entity_keys(e).items():
            cols[role][i] = ids.setdefault(key, len(ids))
        fail[i] = is_failure(e)
        if e.status is not None:
            status[i] = e.status
        err[i] = e.level in ("error", "critical", "fatal")
        atk[i] = bool(e.path) and any(suspicious_url(e.path))
        if e.response_time_ms is not None:
            rt[i] = e.response_time_ms
        if e.kind is EventKind.FLOW:
            flow[i] = 1
            pk[i] = (e.fwd_packets or 0) + (e.bwd_packets or 0)
            by[i] = (e.fwd_bytes or 0) + (e.bwd_bytes or 0)
        hv["user"][i] = _h(e.user) if e.user else 0
        hv["port"][i] = _h(str(e.dst_port)) if e.dst_port is not None else 0
        hv["dip"][i] = _h(e.dst_ip) if e.dst_ip else 0
        hv["path"][i] = _h(e.path) if e.path else 0
        s = e.src_ip or e.src_host
        hv["srcv"][i] = _h(s) if s else 0
    return {"ts": ts, **{f"id_{k}": v for k, v in cols.items()}, "fail": fail, "status": status, "err": err,
            "atk": atk, "rt": rt, "flow": flow, "pk": pk, "by": by, **{f"h_{k}": v for k, v in hv.items()},
            "n_ids": np.int64(len(ids))}


def columnar_flows(lines: list[bytes]) -> dict[str, np.ndarray]:
    """A columnar JSON-flow parser in plain Python: no Event objects, addresses checked once per distinct value."""
    import ipaddress

    seen: dict[str, int] = {}

    def addr(v: object) -> int:
        # Interned while checked: the id is what the window store needs, the text only for output.
        got = seen.get(v)  # type: ignore[arg-type]
        if got is None:
            ipaddress.ip_address(v)  # raises on a bad address: the line is dead-lettered
            got = seen[v] = len(seen)  # type: ignore[index]
        return got

    ts, src, dst, port, pk, by = [], [], [], [], [], []
    for line in lines:
        o = orjson.loads(line)
        ts.append(o["ts"])
        src.append(addr(o["src_ip"]))
        dst.append(addr(o["dst_ip"]))
        port.append(o["dst_port"])
        pk.append(o["fwd_packets"] + o["bwd_packets"])
        by.append(o["fwd_bytes"] + o["bwd_bytes"])
    cols = {"ts": np.asarray(ts, np.int64), "src": np.asarray(src, np.int64), "dst": np.asarray(dst, np.int64),
            "port": np.asarray(port, np.int64), "pk": np.asarray(pk, np.float64), "by": np.asarray(by, np.float64)}
    bad = (cols["port"] < 0) | (cols["port"] > 65535) | (cols["pk"] < 0) | (cols["by"] < 0)
    cols["ok"] = ~bad
    return cols


# ---- the compiled window kernel: proto_kernel.py (numba, dense rings, last-seen histograms) ----



def load_kernel():
    from .proto_kernel import run

    return run


def kernel_inputs(c: dict[str, np.ndarray]):
    ids = np.stack([c["id_src"], c["id_dst"], c["id_user"], c["id_service"]])
    hv = np.stack([c["h_user"], c["h_port"], c["h_dip"], c["h_path"], c["h_srcv"]])
    return (c["ts"], ids, c["fail"], c["status"], c["err"], c["atk"], c["rt"], c["flow"], c["pk"], c["by"], hv,
            int(c["n_ids"]), LATE)


# ---- internal records: today's JSON hop against a columnar batch ------------------------------

def json_hops(events: list[Event]) -> float:
    """Seconds for one hop per event as today: to_dict, encode, decode, rebuild."""
    from features.events import event_from_dict

    t = time.perf_counter()
    for e in events:
        msg = orjson.dumps({"id": "x" * 16, "ev": e.to_dict(), "in": 0, "src": ["logs.raw:0", 1],
                            "route": [["src", "src:1"]], "i": 0, "parts": {}})
        back = orjson.loads(msg)
        event_from_dict(back["ev"])
    return time.perf_counter() - t


def columnar_hops(c: dict[str, np.ndarray], batch: int = 1000) -> tuple[float, int]:
    """Seconds (and bytes) to pack and unpack the kernel's columns in batches of `batch` as raw buffers."""
    names = [k for k, v in c.items() if isinstance(v, np.ndarray) and v.ndim == 1]
    n = len(c["ts"])
    size = 0
    t = time.perf_counter()
    for lo in range(0, n, batch):
        parts = [c[k][lo:lo + batch] for k in names]
        blob = b"".join(p.tobytes() for p in parts)
        size += len(blob)
        off = 0
        for p in parts:
            np.frombuffer(blob, p.dtype, len(p), off)
            off += p.nbytes
    return time.perf_counter() - t, size


# ---- scoring candidates -----------------------------------------------------------------------

def scoring(x_train, y_train, x_test, y_test, seed: int = 0) -> list[dict]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.metrics import f1_score
    from threadpoolctl import threadpool_limits

    from scoring.anomaly import CalibratedAnomalyModel

    rows = []
    benign = y_train == "benign"
    xb = x_test[:1000]
    cands = {
        "RandomForest 150 (today)": RandomForestClassifier(150, class_weight="balanced_subsample", random_state=seed,
                                                           n_jobs=-1),
        "RandomForest 40, depth 16": RandomForestClassifier(40, max_depth=16, class_weight="balanced_subsample",
                                                            random_state=seed, n_jobs=-1),
        "HistGradientBoosting 100": HistGradientBoostingClassifier(max_iter=100, random_state=seed,
                                                                   class_weight="balanced"),
    }
    for name, clf in cands.items():
        clf.fit(x_train, y_train)
        if hasattr(clf, "n_jobs"):
            clf.n_jobs = 1
        with threadpool_limits(1):
            us = _best(lambda c=clf: c.predict_proba(xb), 5) / len(xb) * 1e6
        pred = clf.predict(x_test)
        rows.append({"model": name, "us_per_event_batch_1000": us,
                     "macro_f1_held_out": float(f1_score(y_test, pred, average="macro")),
                     "attack_recall": float(np.mean(pred[y_test != "benign"] != "benign")),
                     "benign_flagged": float(np.mean(pred[y_test == "benign"] != "benign"))})
    for ref in (4096, 1024):
        an = CalibratedAnomalyModel("knn", max_reference=ref, seed=seed).fit(x_train[benign])
        for threads in (1, None):
            with threadpool_limits(threads):
                us = _best(lambda a=an: a.score(xb), 5) / len(xb) * 1e6
            rows.append({"model": f"kNN anomaly, {ref} references, BLAS threads {threads or 'default'}",
                         "us_per_event_batch_1000": us,
                         "benign_over_threshold": float(np.mean(an.score(x_test[y_test == "benign"]) > 0.99)),
                         "attack_over_threshold": float(np.mean(an.score(x_test[y_test != "benign"]) > 0.99))})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=900.0, help="seconds of generated traffic (seed 7)")
    ap.add_argument("--skip-scoring", action="store_true")
    args = ap.parse_args()
    import numba

    now = datetime.now(UTC)
    raws = generate(ScenarioConfig(seed=7, duration_s=args.duration))
    payloads = [r.payload for r in raws]
    n = len(payloads)
    rep: dict = {"events": n, "numba": numba.__version__}

    parse_s = _best(lambda: [parse_line(p, now=now, bounds=None) for p in payloads], 1)
    events = sorted((parse_line(p, now=now, bounds=None) for p in payloads), key=lambda e: e.ts)
    rep["parse_today_us"] = parse_s / n * 1e6
    # The floor of any per-line Python parse: decode JSON lines, match the text ones.
    import re
    clf = re.compile(rb'(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')
    def floor():
        for p in payloads:
            if p[:1] == b"{":
                orjson.loads(p)
            else:
                clf.match(p)
    rep["parse_python_floor_us"] = _best(floor) / n * 1e6
    flows = [p for p in payloads if p.startswith(b'{"ts"') and b'"dst_port"' in p]
    rep["flow_lines"] = len(flows)
    rep["parse_flows_today_us"] = _best(lambda: [parse_line(p, now=now, bounds=None) for p in flows]) / len(flows) * 1e6
    rep["parse_flows_columnar_python_us"] = _best(lambda: columnar_flows(flows)) / len(flows) * 1e6

    store_s = _best(lambda: WindowStore().observe_all(events), 1)
    rep["windows_features_today_us"] = store_s / n * 1e6
    rep["event_features_today_us"] = _best(lambda: [event_features(e) for e in events], 1) / n * 1e6
    rep["role_windows_today_us"] = rep["windows_features_today_us"] - rep["event_features_today_us"]

    col_s = _best(lambda: columns(events), 1)
    rep["columns_and_interning_python_us"] = col_s / n * 1e6
    c = columns(events)
    kernel = load_kernel()
    args_k = kernel_inputs(c)
    t = time.perf_counter()
    out = kernel(*args_k, np.zeros((n, 19)))
    rep["kernel_first_call_s"] = time.perf_counter() - t  # compile or load from numba's cache
    rep["kernel_us"] = _best(lambda: kernel(*args_k, np.zeros((n, 19))), 5) / n * 1e6

    ref = np.asarray(WindowStore().observe_all(events))
    # The prototype computes schema 2's 19 role features (not schema 3's web ones), in that order.
    role_idx = [FEATURE_NAMES.index(f) for f in SCHEMA1_FEATURES]
    agree = {}
    for j, fi in enumerate(role_idx):
        a, b = ref[:, fi], out[:, j]
        agree[FEATURE_NAMES[fi]] = {"identical": float(np.mean(np.isclose(a, b, rtol=1e-9, atol=1e-9))),
                                    "max_abs_diff": float(np.max(np.abs(a - b)))}
    rep["kernel_agreement"] = agree

    hop_s = json_hops(events)
    rep["json_hop_us"] = hop_s / n * 1e6
    col_hop_s, size = columnar_hops(c)
    rep["columnar_hop_us"] = col_hop_s / n * 1e6
    rep["columnar_bytes_per_event"] = size / n
    rep["json_bytes_per_event"] = statistics.mean(
        len(orjson.dumps({"id": "x" * 16, "ev": e.to_dict(), "in": 0, "src": ["logs.raw:0", 1],
                          "route": [["src", "src:1"]], "i": 0, "parts": {}})) for e in events[:2000])

    if not args.skip_scoring:
        from scoring.train import generator_data

        data = generator_data()  # the default bundle's seeds: train 0-3, held-out 100-101
        rep["scoring"] = scoring(data.train.x, data.train.y.astype(str), data.test.x, data.test.y.astype(str))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "proto_core_v2.json").write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
