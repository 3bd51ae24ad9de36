"""`streamguard train`, `models` and `score` end to end, as a user runs them (subprocesses, a temp registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from streams.wire import ThreatEvent
from tests.streams.conftest import TrainedRegistry

# One xdist worker runs the module, in order: the tests share one registry, and the last one adds a version.
pytestmark = pytest.mark.xdist_group("test_cli_models")

_BIN = Path(sys.executable).parent / "streamguard"
DATA = Path(__file__).resolve().parents[1] / "data"


def _run(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(_BIN), *args], capture_output=True, env={**os.environ, **env}, input=stdin, timeout=300)


@pytest.fixture(scope="module")
def registry(trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A registry with one small generator-trained model, trained through the CLI.

    The run is the session's (`trained_registry`, the same command); this module works on a copy.
    """
    root = tmp_path_factory.mktemp("registry") / "registry"
    shutil.copytree(trained_registry.root, root)
    scratch = trained_registry.scratch
    env = {"STREAMGUARD_REGISTRY_DIR": str(root)}
    proc = trained_registry.proc
    assert proc.returncode == 0, proc.stderr.decode()
    assert not list(scratch.iterdir()), "train leaves no working folder behind"
    assert b"macro-F1" in proc.stderr
    return env


def test_train_registers_activates_and_reports(registry: dict[str, str]) -> None:
    listed = _run("models", "list", env=registry)
    assert listed.returncode == 0
    lines = listed.stdout.decode().strip().splitlines()
    assert len(lines) == 1 and "\tactive\t" in lines[0]
    shown = json.loads(_run("models", "show", env=registry).stdout)
    assert shown["status"] == "active" and len(shown["sha256"]) == 64
    assert shown["metrics"]["macro_f1"] > 0.8
    report = Path(registry["STREAMGUARD_REGISTRY_DIR"]) / "streamguard" / "versions" / shown["version"] / "report"
    for name in ("report.json", "report.md", "confusion_matrix.png", "roc_pr.png"):
        assert (report / name).stat().st_size > 0, name


def test_overlapping_seeds_are_refused(registry: dict[str, str]) -> None:
    proc = _run("train", "--seeds", "0,1", "--eval-seeds", "1", "--duration", "60", env=registry)
    assert proc.returncode == 2
    assert b"held out" in proc.stderr and b"Traceback" not in proc.stderr


def test_score_loghub_ranks_repeated_failures_high(registry: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "scored.jsonl"
    proc = _run("score", str(DATA / "loghub" / "Linux_2k.log"), "--all", "--out", str(out), env=registry)
    assert proc.returncode == 0, proc.stderr.decode()
    records = [ThreatEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(records) == 2000  # one result per input line with --all, none lost
    assert len({r.event_id for r in records}) == 2000
    failures: dict[str, int] = defaultdict(int)
    risk: dict[str, int] = defaultdict(int)
    for r in records:
        if r.event.get("auth_outcome") in ("failure", "invalid_user") and r.entity.type in ("ip", "host"):
            failures[r.entity.value] += 1
            risk[r.entity.value] = max(risk[r.entity.value], r.ml_risk_score)
    repeated = [h for h, n in failures.items() if n >= 5]
    assert len(repeated) >= 20
    # Every host with five or more failures reaches high risk, and says why with numbers.
    assert all(risk[h] >= 70 for h in repeated), {h: risk[h] for h in repeated if risk[h] < 70}
    # The host's last attempt, with its whole history in the window.
    top = max((r for r in records if r.entity.value == "150.183.249.110"),
              key=lambda r: r.features["src_failed_logins_10m"])
    assert top.features["src_failed_logins_10m"] >= 50
    assert top.ml_predicted_label == "brute_force" and top.ml_risk_score >= 70
    assert any("150.183.249.110" in s and any(c.isdigit() for c in s) for s in top.ml_reasoning)
    # Lines that are not security events stay low.
    kernel = [r for r in records if r.event.get("service") == "kernel"]
    assert kernel and max(r.ml_risk_score for r in kernel) < 40


def test_score_reads_stdin_and_reports_bad_lines(registry: dict[str, str]) -> None:
    good = (DATA / "cicids2017" / "ddos_part1_head40.csv").read_bytes()
    proc = _run("score", "-", "--all", env=registry, stdin=good)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().strip().splitlines()) == 40
    junk = b'{"ts": 1, "service": \n\x00\xff\xfe binary\nJan  5 09:00:01 bastion sshd[1]: Accepted password for a from 10.0.0.1 port 1 ssh2\n'
    proc = _run("score", "-", "--all", env=registry, stdin=junk)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().strip().splitlines()) == 1
    err = proc.stderr.decode()
    assert '"reason": "bad_json"' in err and "stdin:1" in err
    assert "2 unparseable" in err


def test_score_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run("score", str(DATA / "loghub" / "Linux_2k.log"), env={"STREAMGUARD_REGISTRY_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert b"no active version" in proc.stderr and b"Traceback" not in proc.stderr


def test_promote_rollback_prune(registry: dict[str, str]) -> None:
    proc = _run("train", "--seeds", "2", "--eval-seeds", "100", "--duration", "240", "--no-activate", env=registry)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [line.split("\t") for line in _run("models", "list", env=registry).stdout.decode().strip().splitlines()]
    assert len(rows) == 2 and rows[0][1] == "active" and rows[1][1] == "registered"
    old, new = rows[0][0], rows[1][0]
    assert _run("models", "promote", new, env=registry).returncode == 0
    assert json.loads(_run("models", "show", env=registry).stdout)["version"] == new
    refused = _run("models", "delete", old, env=registry)
    assert refused.returncode == 2 and b"refusing" in refused.stderr and b"Traceback" not in refused.stderr
    assert _run("models", "rollback", env=registry).returncode == 0
    assert json.loads(_run("models", "show", env=registry).stdout)["version"] == old
    assert _run("models", "prune", "--keep", "0", env=registry).returncode == 0  # both protected: nothing goes
    assert len(_run("models", "list", env=registry).stdout.decode().strip().splitlines()) == 2
