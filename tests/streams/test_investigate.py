"""`streamguard threats / actions / blocks`: the analyst's queries over what the MongoDB sink stored."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.investigate import Query, action_filter, incident_filter, parse_when, threat_filter
from streams.mongo import MongoSink, action_document, threat_document
from tests.conftest import ROOT
from tests.streams.conftest import BIN, unique_prefix
from tests.streams.test_mongo_sink import _action, _threat

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_times_are_durations_ago_or_instants() -> None:
    assert parse_when("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_when("1.5h", NOW) == NOW - timedelta(hours=1.5)
    assert parse_when("2026-11-30T08:00:00Z", NOW) == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert parse_when("2026-11-30T08:00:00", NOW).tzinfo is UTC
    with pytest.raises(ValueError, match="duration like 30m"):
        parse_when("yesterday", NOW)


def test_filters_use_the_indexed_fields() -> None:
    q = Query(entity="203.0.113.7", label="brute_force", severity="high", since=NOW)
    assert threat_filter(q) == {"detected_at": {"$gte": NOW}, "entity.value": "203.0.113.7",
                                "ml_predicted_label": "brute_force", "severity": "high"}
    assert action_filter(Query(entity="203.0.113.7", action="block_ip")) == {"target": "203.0.113.7",
                                                                             "action": "block_ip"}
    assert threat_filter(Query()) == {}
    assert incident_filter(Query(entity="203.0.113.7", label="brute_force", status="open", until=NOW)) == {
        "updated_at": {"$lt": NOW}, "target": "203.0.113.7", "label": "brute_force", "status": "open"}


def _cli(uri: str | None, db: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STREAMGUARD_MONGO_URI"}
    env |= {"STREAMGUARD_MONGO_DATABASE": db, "COLUMNS": "200"}
    if uri:
        env["STREAMGUARD_MONGO_URI"] = uri
    return subprocess.run([str(BIN), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _lines(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_without_mongodb_it_says_what_it_needs() -> None:
    done = _cli(None, "x", "threats")
    assert done.returncode == 2 and "STREAMGUARD_MONGO_URI" in done.stderr


@pytest.mark.integration
def test_threats_actions_and_active_blocks_from_the_sink(mongo_db, mongo_uri: str) -> None:
    now_ms = int(time.time() * 1000)
    threats = []
    for i, (label, severity) in enumerate([("brute_force", "high"), ("sql_injection", "critical"),
                                           ("brute_force", "medium"), ("port_scan", "high")]):
        t = _threat(i) | {"ml_predicted_label": label, "severity": severity, "detected_at_ms": now_ms - i * 60_000}
        threats.append(threat_document(orjson.dumps(t)))
    acts = [
        _action(1) | {"action_id": "b1", "issued_at_ms": now_ms - 50_000, "expires_at_ms": now_ms + 600_000},
        _action(2) | {"action_id": "b2", "issued_at_ms": now_ms - 40_000, "expires_at_ms": now_ms + 600_000},
        _action(2) | {"action_id": "u2", "action": "unblock_ip", "issued_at_ms": now_ms - 30_000,
                      "expires_at_ms": None, "ttl_s": 0},
        _action(3) | {"action_id": "d3", "dry_run": True, "issued_at_ms": now_ms - 20_000,
                      "expires_at_ms": now_ms + 600_000},
        _action(4) | {"action_id": "e4", "issued_at_ms": now_ms - 900_000, "expires_at_ms": now_ms - 300_000},
        _action(5) | {"action_id": "b5", "issued_at_ms": now_ms - 10_000, "expires_at_ms": now_ms + 3_600_000},
        _action(5) | {"action_id": "al5", "action": "alert", "issued_at_ms": now_ms - 5_000},
    ]
    sink = MongoSink(mongo_db)
    sink.write("threats", threats)
    sink.write("actions", [action_document(orjson.dumps(a)) for a in acts])
    db = mongo_db.name

    got = _lines(_cli(mongo_uri, db, "threats", "--json"))
    assert [t["event_id"] for t in got] == [t["event_id"] for t in threats]  # newest first
    got = _lines(_cli(mongo_uri, db, "threats", "--label", "brute_force", "--json"))
    assert {t["entity"]["value"] for t in got} == {"203.0.113.0", "203.0.113.2"}
    got = _lines(_cli(mongo_uri, db, "threats", "--severity", "high", "--since", "2m", "--json"))
    assert [t["entity"]["value"] for t in got] == ["203.0.113.0"]
    got = _lines(_cli(mongo_uri, db, "threats", "--entity", "203.0.113.1", "--limit", "5", "--json"))
    assert [t["ml_predicted_label"] for t in got] == ["sql_injection"]

    got = _lines(_cli(mongo_uri, db, "actions", "--action", "unblock_ip", "--json"))
    assert [a["action_id"] for a in got] == ["u2"]
    got = _lines(_cli(mongo_uri, db, "actions", "--target", "203.0.113.5", "--json"))
    assert [a["action_id"] for a in got] == ["al5", "b5"]

    # Blocked now: 1 and 5. Not 2 (unblocked), 3 (dry run) or 4 (expired); 5's later alert is no unblock.
    got = _lines(_cli(mongo_uri, db, "blocks", "--json"))
    assert [b["target"] for b in got] == ["203.0.113.5", "203.0.113.1"]
    table = _cli(mongo_uri, db, "blocks")
    assert table.returncode == 0 and "active blocks (2)" in table.stdout and "203.0.113.1" in table.stdout

    bad = _cli(mongo_uri, db, "threats", "--since", "last tuesday")
    assert bad.returncode == 2 and "duration like 30m" in bad.stderr


def test_api_parameters_are_checked() -> None:
    from streams.api import MAX_LIMIT, query_from

    q = query_from("threats", {"label": "xss", "since": "1h", "limit": "10", "offset": "20"}, NOW)
    assert (q.label, q.since, q.limit) == ("xss", NOW - timedelta(hours=1), 30)
    for bad in ({"limit": str(MAX_LIMIT + 1)}, {"offset": "-1"}, {"limit": "ten"}, {"label": "x", "evil": "1"},
                {"since": "soon"}):
        with pytest.raises(ValueError):
            query_from("threats", bad, NOW)
    with pytest.raises(ValueError, match="unknown parameter"):
        query_from("blocks", {"label": "xss"}, NOW)
    assert query_from("incidents", {"status": "closed", "target": "10.0.0.1"}, NOW).status == "closed"
    with pytest.raises(ValueError, match="open or closed"):
        query_from("incidents", {"status": "{'$ne': 1}"}, NOW)


@pytest.mark.integration
def test_the_worker_serves_the_same_queries_as_json(mongo_db, mongo_uri: str, start_worker) -> None:

    now_ms = int(time.time() * 1000)
    threats = [threat_document(orjson.dumps(_threat(i) | {"detected_at_ms": now_ms - i * 1000,
                                                         "ml_predicted_label": "xss" if i % 2 else "brute_force"}))
               for i in range(7)]
    sink = MongoSink(mongo_db)
    sink.write("threats", threats)
    sink.write("actions", [action_document(orjson.dumps(_action(1) | {"issued_at_ms": now_ms,
                                                                      "expires_at_ms": now_ms + 600_000}))])
    prefix = unique_prefix()
    worker = start_worker(prefix.rstrip("."), prefix, mongo_uri=mongo_uri, mongo_database=mongo_db.name)

    def get(path: str) -> tuple[int, dict]:
        status, body = worker.get(path)
        return status, json.loads(body)

    status, page = get("/api/threats?label=brute_force&limit=2")
    assert status == 200 and page["count"] == 2 and page["offset"] == 0
    assert [t["event_id"] for t in page["items"]] == [threats[0]["_id"], threats[2]["_id"]]
    status, page2 = get(page["next"])
    assert [t["event_id"] for t in page2["items"]] == [threats[4]["_id"], threats[6]["_id"]]
    status, page3 = get(page2["next"])
    assert page3["items"] == [] and page3["next"] is None
    status, blocks = get("/api/blocks")
    assert status == 200 and [b["target"] for b in blocks["items"]] == ["203.0.113.1"]
    status, actions = get("/api/actions?target=203.0.113.9")
    assert status == 200 and actions["items"] == []
    status, err = get("/api/threats?limit=100000")
    assert status == 400 and "limit" in err["error"]
    status, err = get("/api/threats?entity[$ne]=x")
    assert status == 400 and "unknown parameter" in err["error"]
