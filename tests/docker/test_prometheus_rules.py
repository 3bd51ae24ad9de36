"""The shipped alerting rules: valid, unit-tested with promtool, and about metrics the worker exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docker.promql import exported_names, queried_names

RULES_DIR = Path(__file__).resolve().parents[2] / "docker" / "prometheus"
RULES = RULES_DIR / "alerts.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `make test-tools` installs Debian's prometheus package")
    return path


def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "11 rules found" in out.stdout


def test_each_alert_fires_on_its_shape_and_not_on_its_near_miss() -> None:
    out = subprocess.run([_promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES_DIR, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = set(re.findall(r"alertname: (\w+)", (RULES_DIR / "alerts_test.yml").read_text()))
    assert alerts == tested


def test_the_rules_query_only_metrics_a_worker_exports() -> None:
    exported = exported_names()
    for rule in (r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]):
        names = queried_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, f"{rule['alert']} queries {sorted(names - exported)}, which no worker exports"
