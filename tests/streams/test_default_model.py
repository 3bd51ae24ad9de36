"""The default training recipe (`make models`: generator + the real flows in data/) knows real flows.

`streamguard score` of the last 30 % (by time) of each shipped CICIDS2017 file, rows the
bundle never trained on, flags DDoS and PortScan at >= 95 % with <= 1 % of benign rows, at the
workers' default threshold. The generator part is smaller than `make models` uses, to keep the
test short; the note in data/README.md says what the benign rows cannot show.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from features.errors import ParseError
from features.parsing import read_cicflowmeter_csv
from tests.conftest import ROOT
from tests.streams.conftest import BIN

DATA = ROOT / "data" / "cicids2017"
FILES = ("ddos_part1.csv", "portscan_part1.csv", "thursday_benign.csv")


def _last_rows(src: Path, dst: Path, fraction: float = 0.3) -> int:
    """The file's last rows by event time (ties in file order), as a CSV with its header; how many."""
    with src.open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    events = list(read_cicflowmeter_csv(src, now=datetime.now(UTC), bounds=None))
    assert len(events) == len(rows) and not any(isinstance(e, ParseError) for e in events)
    order = sorted(range(len(rows)), key=lambda i: events[i].ts)
    keep = len(rows) - round(len(rows) * (1 - fraction))  # what the trainer holds out
    with dst.open("w", newline="") as fh:
        csv.writer(fh).writerows([header] + [rows[i] for i in order[-keep:]])
    return keep


def test_the_default_recipe_detects_real_ddos_and_port_scans_on_held_out_rows(tmp_path: Path) -> None:
    env = {**os.environ, "STREAMGUARD_REGISTRY_DIR": str(tmp_path / "registry"), "TMPDIR": str(tmp_path)}
    flows = [arg for name in FILES for arg in ("--flows", str(DATA / name))]
    done = subprocess.run([str(BIN), "train", "--generator", "--seeds", "0", "--duration", "150",
                           "--eval-seeds", "100", *flows, "--activate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "ddos_part1.csv: share at risk >= 70" in done.stdout + done.stderr
    rates = {}
    for name in FILES:
        held = tmp_path / name
        n = _last_rows(DATA / name, held)
        out = tmp_path / f"{name}.jsonl"
        scored = subprocess.run([str(BIN), "score", str(held), "--all", "--out", str(out)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        assert scored.returncode == 0, scored.stderr
        results = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(results) == n
        rates[name] = sum(r["ml_risk_score"] >= 70 for r in results) / n
    print(f"\nshare at risk >= 70 on held-out real rows: {rates}")
    assert rates["ddos_part1.csv"] >= 0.95 and rates["portscan_part1.csv"] >= 0.95
    assert rates["thursday_benign.csv"] <= 0.01
