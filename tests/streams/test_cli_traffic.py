"""`streamguard produce`, `simulate`, `replay` and `tail` against a real broker, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_BIN = Path(sys.executable).parent / "streamguard"
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def cli_env(kafka_bootstrap: str, kafka_admin):
    """Environment for the CLI: the session broker, a unique topic prefix, one partition (so order is checkable).

    Every topic the CLI created under the prefix is deleted afterwards.
    """
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMGUARD_TOPIC_PREFIX": prefix,
        "STREAMGUARD_TOPIC_PARTITIONS": "1",
    }
    yield env
    ours = [t for t in kafka_admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if ours:
        for fut in kafka_admin.delete_topics(ours, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception:  # noqa: BLE001 - best-effort clean-up must not mask the test's result
                pass


def _run(*args: str, env: dict[str, str], stdin: bytes | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(_BIN), *args], capture_output=True, env={**os.environ, **env}, input=stdin,
                          timeout=timeout)


def _read(make_consumer, topic: str, expected: int, timeout: float = 120.0) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every message of `topic` in partition order, read by assignment (no group join).

    Reads until `expected` messages arrived, then a little longer to catch any extra one.
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = make_consumer()
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    extra_until = None
    while time.monotonic() < (extra_until or deadline):
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert not msg.error(), msg.error()
        out.append((msg.key(), msg.value()))
        if len(out) >= expected and extra_until is None:
            extra_until = time.monotonic() + 1.0
    return out


def _file_lines(path: Path) -> list[bytes]:
    """The file's lines as bytes, without terminators (`\\n` or `\\r\\n`), empty lines left out."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in path.read_bytes().split(b"\n")]
    return [line for line in lines if line.strip()]


def test_produce_sends_stdin_lines_verbatim(cli_env, make_consumer) -> None:
    lines = [b"Jan  5 09:00:01 web-01 sshd[1]: Failed password for root from 203.0.113.9 port 2201 ssh2",
             b'{"ts": 1, "not": "validated here"}',
             b"plain garbage \xff\xfe"]
    proc = _run("produce", "--topic", "logs", env=cli_env, stdin=b"\n".join(lines) + b"\n\n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"delivered 3 of 3" in proc.stderr
    got = _read(make_consumer, cli_env["STREAMGUARD_TOPIC_PREFIX"] + "logs.raw", 3)
    assert [v for _, v in got] == lines
    assert all(k is None for k, _ in got)


def test_simulate_sends_the_generators_traffic_rebased_to_now(cli_env, make_consumer, tmp_path: Path) -> None:
    from features.simulation import ScenarioConfig, attackers, generate

    truth_path = tmp_path / "truth.json"
    before_ms = int(time.time() * 1000)
    proc = _run("simulate", "--duration", "20", "--rate", "0", "--seed", "3", "--truth", str(truth_path),
                env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()
    truth = json.loads(truth_path.read_text())
    total = sum(truth["counts"].values())
    assert total > 0 and not truth["interrupted"]
    assert abs(truth["first_ts_ms"] - before_ms) < 60_000

    # The same config rebuilds the same events: same payloads, keys and order per topic.
    c = truth["config"]
    cfg = ScenarioConfig(seed=c["seed"], start=datetime.fromisoformat(c["start"]), duration_s=c["duration_s"],
                         benign_eps=c["benign_eps"], attacks=tuple(c["attacks"]),
                         attack_intensity=c["attack_intensity"], attackers_per_scenario=c["attackers_per_scenario"],
                         allowlisted_attacker=c["allowlisted_attacker"])
    assert c["seed"] == 3 and c["duration_s"] == 20
    expected = generate(cfg)
    assert len(expected) == total
    assert dict(Counter(e.label for e in expected)) == truth["counts"]
    assert expected[0].ts_ms == truth["first_ts_ms"] and expected[-1].ts_ms == truth["last_ts_ms"]
    assert {k: sorted(v) for k, v in attackers(cfg).items()} == truth["attackers"]
    assert truth["normal_sources"] and not set(truth["normal_sources"]) & set().union(*map(set, truth["attackers"].values()))

    prefix = cli_env["STREAMGUARD_TOPIC_PREFIX"]
    for family in ("logs", "flows"):
        want = [(e.actor.encode(), e.payload) for e in expected if e.topic == family]
        got = _read(make_consumer, f"{prefix}{family}.raw", len(want))
        assert truth["topics"][f"{prefix}{family}.raw"] == len(want)
        assert len(got) == len(want)
        assert got == want


def test_simulate_paces_by_event_time(cli_env, tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    started = time.monotonic()
    proc = _run("simulate", "--duration", "3", "--rate", "50", "--seed", "1", "--truth", str(truth_path),
                env=cli_env)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode()
    truth = json.loads(truth_path.read_text())
    span_s = (truth["last_ts_ms"] - truth["first_ts_ms"]) / 1000
    assert span_s > 2.5
    assert took >= 2.5 and took >= span_s


def test_simulate_speed_paces_a_multiple_of_event_time_and_refuses_nonsense(cli_env, tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    started = time.monotonic()
    proc = _run("simulate", "--duration", "4", "--rate", "50", "--speed", "4", "--seed", "1", "--truth",
                str(truth_path), env=cli_env)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode()
    assert "paced at 4x" in proc.stderr.decode() + proc.stdout.decode()
    truth = json.loads(truth_path.read_text())
    assert took >= (truth["last_ts_ms"] - truth["first_ts_ms"]) / 1000 / 4  # still paced, only faster
    for bad in ("0", "-2", "nan"):
        proc = _run("simulate", "--duration", "1", "--speed", bad, env=cli_env)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "--speed" in err and "Traceback" not in err, err


def test_replay_sends_log_lines_and_csv_rows_unchanged(cli_env, make_consumer) -> None:
    prefix = cli_env["STREAMGUARD_TOPIC_PREFIX"]
    log = DATA / "loghub" / "Linux_2k.log"
    proc = _run("replay", str(log), env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = _file_lines(log)
    assert len(lines) == 2000
    got = _read(make_consumer, f"{prefix}logs.raw", 2000)
    assert [v for _, v in got] == lines
    # One key for the whole file keeps its order on one partition.
    assert {k for k, _ in got} == {b"Linux_2k.log"}

    csv = DATA / "cicids2017" / "ddos_part1_head40.csv"
    proc = _run("replay", str(csv), "--spread", env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = _file_lines(csv)[1:]
    assert len(rows) == 40 and not rows[0].startswith(b"Flow ID")
    got = _read(make_consumer, f"{prefix}flows.raw", 40)
    assert [v for _, v in got] == rows
    assert all(k is None for k, _ in got)

    proc = _run("replay", str(csv), "--spread", "--key", "x", env=cli_env)
    assert proc.returncode == 2 and b"exclude each other" in proc.stderr


def _threat(i: int) -> dict:
    return {
        "event_id": f"{i:032x}", "entity": {"type": "ip", "value": f"203.0.113.{i}"},
        "ml_anomaly_score": 0.97, "ml_predicted_label": "brute_force", "ml_confidence": 0.9, "ml_risk_score": 88,
        "ml_reasoning": ["Many failed logins from one source. More detail.", "Second reason."],
        "severity": "high", "features": {"fail_count_60s": 42.0},
        "model": {"name": "streamguard", "version": "v1", "feature_schema_version": "1"},
        "event": {"kind": "auth"}, "event_time_ms": 1_767_603_600_000 + i, "detected_at_ms": 1_767_603_601_000,
    }


def test_tail_json_prints_threats_and_flags_unreadable_records(cli_env, kafka_admin, make_producer) -> None:
    from confluent_kafka.admin import NewTopic

    from streams.wire import ThreatEvent

    topic = cli_env["STREAMGUARD_TOPIC_PREFIX"] + "threats.enriched"
    kafka_admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = make_producer()
    threats = [ThreatEvent(**_threat(i)) for i in (1, 2)]
    producer.produce(topic, threats[0].model_dump_json().encode())
    producer.produce(topic, b"{not json at all")
    producer.produce(topic, threats[1].model_dump_json().encode())
    assert producer.flush(30) == 0

    proc = _run("tail", "--threats", "--no-incidents", "--json", "--from-beginning", "--max", "3", "--timeout", "120",
                env=cli_env, timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(out) == 3
    good = [o for o in out if o["kind"] == "threat"]
    assert [ThreatEvent.model_validate(o["record"]) for o in good] == threats
    (bad,) = [o for o in out if o["kind"] == "unreadable"]
    assert bad["expected"] == "threat" and bad["topic"] == topic and bad["offset"] == 1
    assert bad["raw"] == "{not json at all" and bad["error"].startswith("not JSON")


def test_unreachable_broker_and_missing_file_are_one_clear_line(tmp_path: Path) -> None:
    proc = _run("produce", "hello", env={"STREAMGUARD_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "127.0.0.1:1" in err

    missing = tmp_path / "nope.log"
    proc = _run("replay", str(missing), env={"STREAMGUARD_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no such file" in err and "nope.log" in err
