"""Incidents through a real worker: one brute-force run is one incident that updates, then closes, in Kafka and MongoDB."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from streams.wire import Incident, ThreatEvent
from tests.conftest import ROOT
from tests.streams.conftest import BIN, drain, produce_mixed, unique_prefix, wait_for, wait_pipeline_idle

pytestmark = pytest.mark.integration

BRUTE_FORCERS = ["198.51.100.21", "198.51.100.22"]


def _attempts(logs: str, start: datetime, first: int, n: int) -> list[tuple[str, bytes | None, bytes]]:
    items = []
    for k in range(first, first + n):
        t = start + timedelta(seconds=2 * k)
        for ip in BRUTE_FORCERS:
            msg = f"Failed password for root from {ip} port {40000 + k} ssh2"
            items.append((logs, None, f"{t.strftime('%b %e %H:%M:%S')} bastion sshd[{900 + k}]: {msg}".encode()))
    return items


def _incidents(bootstrap: str, topic: str, until=None) -> list[Incident]:
    return [Incident.model_validate_json(r.value())
            for r in drain(bootstrap, topic, idle_s=1.0, until=(lambda out: until(
                [Incident.model_validate_json(r.value()) for r in out])) if until else None)]


def test_a_brute_force_run_is_one_incident_that_updates_then_closes(kafka_bootstrap: str, start_worker, mongo_db,
                                                                      mongo_uri: str) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    logs, incidents_topic = f"{prefix}logs.raw", f"{prefix}threats.incidents"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    worker = start_worker(app_id, prefix, mongo_uri=mongo_uri, mongo_database=mongo_db.name,
                          incident_update_s=1, incident_quiet_s=8)

    # Two phases: the second arrives once the first has opened incidents, so they must update.
    produce_mixed(kafka_bootstrap, _attempts(logs, start, 0, 20))
    wait_for(lambda: {i.target for i in _incidents(kafka_bootstrap, incidents_topic)} >= set(BRUTE_FORCERS), 300,
             "an incident for each brute-forcer", worker.log_tail)
    produce_mixed(kafka_bootstrap, _attempts(logs, start, 20, 20))
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 600, worker.log_tail, sink=True)
    threats = [ThreatEvent.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}threats.enriched")]
    per_key = Counter((t.entity.type, t.entity.value, t.ml_predicted_label) for t in threats)
    assert {ip for _, ip, label in per_key if label == "brute_force"} == set(BRUTE_FORCERS), per_key

    def all_closed(records: list[Incident]) -> bool:
        last = {r.incident_id: r for r in records}
        return {(r.target_type, r.target, r.label) for r in last.values() if r.status == "closed"} >= set(per_key)

    records = _incidents(kafka_bootstrap, incidents_topic, until=all_closed)
    by_key: dict[tuple[str, str, str], list[Incident]] = defaultdict(list)
    for r in records:
        by_key[(r.target_type, r.target, r.label)].append(r)
    assert set(by_key) == set(per_key)
    for key, recs in by_key.items():
        assert len({r.incident_id for r in recs}) == 1, f"{key}: one attack, one incident"
        assert [r.revision for r in recs] == sorted({r.revision for r in recs}), f"{key}: revisions only grow"
        assert [r.status for r in recs][-1] == "closed" and "closed" not in [r.status for r in recs][:-1]
        final = recs[-1]
        assert final.threat_count == per_key[key], (key, final.threat_count, per_key[key])
        assert final.max_risk == max(t.ml_risk_score for t in threats
                                     if (t.entity.type, t.entity.value, t.ml_predicted_label) == key)
        assert final.first_seen_ms <= final.last_seen_ms and final.closed_at_ms is not None
        assert final.model_versions and final.event_ids
    for ip in BRUTE_FORCERS:
        recs = by_key[("ip", ip, "brute_force")]
        counts = [r.threat_count for r in recs]
        print(f"\n{ip}: {per_key[('ip', ip, 'brute_force')]} threats, incident records with counts {counts}")
        assert len(recs) >= 3 and counts[0] < counts[-1], f"{ip}: opened, updated, closed: {counts}"
        # Throttled: far fewer records than threats.
        assert len(recs) < per_key[("ip", ip, "brute_force")], counts
        assert "block_ip" in {a.action for a in recs[-1].actions}

    # MongoDB keeps the latest revision of each incident.
    def stored() -> bool:
        docs = list(mongo_db["incidents"].find())
        return len(docs) == len(by_key) and all(d["status"] == "closed" for d in docs)

    wait_for(stored, 120, "the sink to store every closed incident", worker.log_tail)
    for doc in mongo_db["incidents"].find():
        recs = by_key[(doc["target_type"], doc["target"], doc["label"])]
        assert doc["_id"] == recs[-1].incident_id and doc["revision"] == recs[-1].revision

    env = {**os.environ, "STREAMGUARD_MONGO_URI": mongo_uri, "STREAMGUARD_MONGO_DATABASE": mongo_db.name,
           "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMGUARD_TOPIC_PREFIX": prefix, "COLUMNS": "200"}
    done = subprocess.run([str(BIN), "incidents", "--label", "brute_force", "--status", "closed", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["target"] for line in done.stdout.splitlines()) == BRUTE_FORCERS
    status, body = worker.get(f"/api/incidents?target={BRUTE_FORCERS[0]}&label=brute_force")
    assert status == 200 and [i["incident_id"] for i in json.loads(body)["items"]] == [
        by_key[("ip", BRUTE_FORCERS[0], "brute_force")][-1].incident_id]
    # `streamguard tail` shows incidents by default.
    done = subprocess.run([str(BIN), "tail", "--json", "--from-beginning", "--no-actions", "--max", "2",
                           "--timeout", "60"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == ["incident", "incident"]
