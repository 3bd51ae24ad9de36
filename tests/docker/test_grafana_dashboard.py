"""The provisioned Grafana dashboard: it reads metrics the worker exports, through the provisioned datasource."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.docker.promql import exported_names, queried_names

DOCKER = Path(__file__).resolve().parents[2] / "docker"
PROVISIONING = DOCKER / "grafana" / "provisioning"
DASHBOARD = PROVISIONING / "dashboards" / "streamguard.json"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def test_every_query_reads_metrics_a_worker_exports() -> None:
    exported = exported_names()
    queries = dashboard_queries()
    assert len(queries) >= 15
    for title, expr in queries:
        names = queried_names(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} are not exported by a worker"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    read = set().union(*(queried_names(e) for _, e in dashboard_queries()))
    for name in ("streamguard_events_in_total", "streamguard_consumer_lag_messages",
                 "streamguard_end_to_end_lag_seconds_bucket", "streamguard_threats_total", "streamguard_actions_total",
                 "streamguard_deadletters_total", "streamguard_model_info", "streamguard_model_swaps_total",
                 "streamguard_challenger_agreement_ratio", "streamguard_drift_psi"):
        assert name in read, name


def test_grafana_finds_the_dashboard_and_its_datasource() -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "streamguard.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in compose["services"]["grafana"]["volumes"]
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    uids = {p["datasource"]["uid"] for p in panels} | {t["datasource"]["uid"] for p in panels for t in p["targets"]}
    assert uids == {datasource["uid"]}
