"""Web scanners through a real worker: blocked on their evidence; crawlers with dead links and staff audits are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from features.simulation import ScenarioConfig
from features.simulation.generate import attackers, generate, normal_sources
from streams.wire import HealingAction, ThreatEvent
from tests.streams.conftest import drain, produce_mixed, unique_prefix, wait_pipeline_idle

pytestmark = pytest.mark.integration

# Seed 24: a gobuster run and a nikto run, beside a staff member's site audit with a link checker
# (244 pages, 42 of them 404) and the rest of a shop's day (measured when the scenario was written).
SCANS = dict(seed=24, duration_s=300, attacks=("web_scan",), benign_eps=15.0)
_ROBOTS = ("AhrefsBot", "SemrushBot", "Applebot", "Screaming Frog", "W3C-checklink", "SiteAuditBot", "Googlebot",
           "bingbot")


def test_scanners_are_blocked_and_busy_crawlers_with_dead_links_are_not(kafka_bootstrap: str, start_worker) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    cfg = ScenarioConfig(start=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=6), **SCANS)
    raws = generate(cfg)
    scanners = attackers(cfg)["web_scan"]
    robots = {r.actor for r in raws if any(b.encode() in r.payload for b in _ROBOTS)}
    dead_links = {ip: sum(r.actor == ip and b'" 404 ' in r.payload for r in raws) for ip in robots}
    assert len(scanners) == 2 and max(dead_links.values()) >= 20, "the scenario must hold its hard negative"
    worker = start_worker(app_id, prefix)
    produce_mixed(kafka_bootstrap, [(f"{prefix}{r.topic}.raw", r.actor.encode(), r.payload) for r in raws])
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 600, worker.log_tail)

    threats = [ThreatEvent.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}threats.enriched")]
    actions = [HealingAction.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}actions.healing",
                                                                           idle_s=1.0)]
    blocked = {a.target for a in actions if a.action == "block_ip"}
    by_label = {ip: sorted({t.ml_predicted_label for t in threats if t.event.get("src_ip") == ip})
                for ip in scanners | robots}
    print(f"\nblocked {sorted(blocked)}; labels {by_label}; robots' 404s {dead_links}")
    assert scanners <= blocked, "every scanner is blocked"
    for a in actions:
        if a.action == "block_ip" and a.target in scanners:
            assert "src_sensitive_paths_5m" in a.reason and "src_http_4xx_5m" in a.reason, a.reason
    assert not blocked & robots, "no crawler or site audit is blocked"
    assert not blocked & normal_sources(cfg), "no benign source is blocked"
