"""Healing policy through real workers: a 200-bot DDoS is one action at its target; policies load, persist, refuse."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from features.simulation import ScenarioConfig
from features.simulation.generate import attackers, generate
from scoring.healing import BUILTIN_TEXT
from streams.control import Command, HealingPolicy, sign
from streams.wire import AuditRecord, HealingAction, Incident, StatusReply, ThreatEvent
from tests.conftest import SIGNING_SECRET
from tests.streams.conftest import (
    drain,
    produce,
    produce_mixed,
    run_cli,
    unique_prefix,
    wait_for,
    wait_pipeline_idle,
)

pytestmark = pytest.mark.integration

# Seed 25 gives the generator's largest DDoS: 200 bots against one web server.
DDOS = dict(seed=25, duration_s=240, attacks=("ddos",), benign_eps=10.0)


def _actions(bootstrap: str, prefix: str) -> list[HealingAction]:
    return [HealingAction.model_validate_json(r.value()) for r in drain(bootstrap, f"{prefix}actions.healing",
                                                                        idle_s=1.0)]


def test_a_200_bot_ddos_gets_one_rate_limit_at_its_target(kafka_bootstrap: str, start_worker) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    cfg = ScenarioConfig(start=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=6), **DDOS)
    bots = attackers(cfg)["ddos"]
    assert len(bots) == 200
    worker = start_worker(app_id, prefix, emit_scored=True, incident_update_s=1)
    produce_mixed(kafka_bootstrap, [(f"{prefix}{r.topic}.raw", r.actor.encode(), r.payload) for r in generate(cfg)])
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 600, worker.log_tail)

    threats = [ThreatEvent.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}threats.enriched")]
    flood = [t for t in threats if t.ml_predicted_label == "ddos" and t.event.get("src_ip") in bots]
    victims = {t.event["dst_ip"] for t in flood if t.event.get("kind") == "flow"}
    detected = {t.event["src_ip"] for t in flood}
    print(f"\n{len(flood)} ddos threats from {len(detected)} of {len(bots)} bots against {sorted(victims)}")
    assert len(victims) == 1 and len(detected) >= 150, "the flood must be detected for this test to mean anything"

    actions = _actions(kafka_bootstrap, prefix)
    acting = [a for a in actions if a.action not in ("alert", "unblock_ip")]
    [limit] = acting  # one action for the whole attack: no bot blocked, no breaker tripped
    assert limit.action == "rate_limit" and limit.target == victims.pop() and limit.target_type == "ip"
    # The bots already seen as threats when it went out (measured: 10); later ones count on the block.
    print(f"one {limit.action} on {limit.target}, {len(limit.sources)} sources listed")
    assert 5 <= len(limit.sources) <= 100 and set(limit.sources) <= bots, limit.sources
    assert limit.policy_version == "2" and "rate-limited for 600 s" in limit.reason
    assert not [a for a in actions if a.degraded], "the circuit breaker must not trip for one attack"

    # One incident for the attack, at its target, not one per bot.
    records = [Incident.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}threats.incidents",
                                                                      idle_s=1.0)]
    latest = {r.incident_id: r for r in sorted(records, key=lambda r: r.revision)}.values()
    [inc] = [r for r in latest if r.label == "ddos" and r.target == limit.target]
    at_victim = [t for t in flood if t.event.get("dst_ip") == limit.target]
    print(f"incident {inc.incident_id[:8]}: {inc.threat_count} threats, {len(inc.sources)} sources listed")
    assert inc.threat_count == len(at_victim)
    assert len(inc.sources) == 100 and set(inc.sources) <= bots
    assert limit.action_id in {a.action_id for a in inc.actions}
    # Only threats whose events name no destination (none here, measured) may have incidents of their own.
    no_dst = Counter(t.entity.value for t in flood if not t.event.get("dst_ip"))
    assert {r.target: r.threat_count for r in latest if r.label == "ddos" and r.target != limit.target} == no_dst



def _attempts(logs: str, ip: str, start: datetime, n: int) -> list[tuple[str, bytes | None, bytes]]:
    return [(logs, None, f"{(start + timedelta(seconds=2 * k)).strftime('%b %e %H:%M:%S')} bastion sshd[{900 + k}]: "
             f"Failed password for root from {ip} port {40000 + k} ssh2".encode()) for k in range(n)]


def test_a_policy_loads_into_workers_survives_a_restart_and_a_bad_one_is_refused(
        kafka_bootstrap: str, start_worker, tmp_path: Path) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    logs = f"{prefix}logs.raw"
    env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMGUARD_TOPIC_PREFIX": prefix,
           "STREAMGUARD_APP_ID": app_id, "STREAMGUARD_SIGNING_SECRET": SIGNING_SECRET, "COLUMNS": "200"}
    worker = start_worker(app_id, prefix)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    # The built-in policy blocks an SSH brute-forcer after 5 failures.
    produce_mixed(kafka_bootstrap, _attempts(logs, "198.51.100.31", start, 20))
    wait_for(lambda: any(a.action == "block_ip" and a.target == "198.51.100.31"
                         for a in _actions(kafka_bootstrap, prefix)), 300, "the built-in block", worker.log_tail)

    # An operator's policy: SSH brute force only blocks after 50 failures.
    strict = BUILTIN_TEXT.replace('version = "2"', 'version = "ssh-50"').replace(
        "min_evidence = { src_failed_logins_10m = 5 }", "min_evidence = { src_failed_logins_10m = 50 }")
    path = tmp_path / "policy.toml"
    path.write_text(strict)
    done = run_cli(env, "control", "policy", str(path), "--check")
    assert done.returncode == 0 and "policy ssh-50: 17 rules for 11 labels" in done.stdout + done.stderr
    done = run_cli(env, "control", "policy", str(path), "--wait", "120", "--expect", "1")
    assert done.returncode == 0 and "policy ssh-50" in done.stdout + done.stderr, done.stdout + done.stderr

    # It survives a restart: the operator state carries it.
    worker.stop()
    worker = start_worker(app_id, prefix)
    produce_mixed(kafka_bootstrap, _attempts(logs, "198.51.100.32", start + timedelta(minutes=5), 20))
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 600, worker.log_tail)
    threats = [ThreatEvent.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}threats.enriched")]
    assert any(t.entity.value == "198.51.100.32" and t.ml_predicted_label == "brute_force" for t in threats)
    actions = _actions(kafka_bootstrap, prefix)
    assert not [a for a in actions if a.target == "198.51.100.32" and a.action == "block_ip"], \
        "20 failures are below the loaded policy's 50"
    status = run_cli(env, "control", "status", "--wait", "60", "--expect", "1")
    assert "ssh-50" in status.stdout + status.stderr

    # A policy the CLI would refuse, sent by hand: the worker refuses it whole and keeps its own.
    bad = orjson.loads(orjson.dumps({"version": "typo", "rules": [
        {"label": "ddos", "action": "rate_limit", "target": "destination", "min_risk": 70,
         "min_evidence": {"dst_distinct_src_1m": 20}}]}))
    env_cmd = sign(Command(op="policy", policy=HealingPolicy.model_validate(bad)), SIGNING_SECRET, app_id=app_id,
                   now_ms=int(datetime.now(UTC).timestamp() * 1000), issuer="test@policy")
    produce(kafka_bootstrap, f"{prefix}ops.control", [(b"control", env_cmd.model_dump_json().encode())])

    def replies() -> list[StatusReply]:
        return [StatusReply.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}ops.status",
                                                                          idle_s=1.0)]
    wait_for(lambda: any(r.nonce == env_cmd.nonce for r in replies()), 120, "the worker's answer", worker.log_tail)
    [reply] = [r for r in replies() if r.nonce == env_cmd.nonce]
    assert reply.outcome == "rejected" and reply.reason == "invalid_policy"
    assert "unknown feature(s) ['dst_distinct_src_1m']" in reply.detail and reply.state["policy_version"] == "ssh-50"
    audit = [AuditRecord.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}ops.audit")]
    assert {(a.op, a.outcome) for a in audit} >= {("policy", "applied"), ("policy", "rejected")}
