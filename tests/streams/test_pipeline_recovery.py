"""Crash recovery and log replay through real worker processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features.extract import FEATURE_NAMES, WindowStore
from features.parsing import parse_line
from features.simulation import ScenarioConfig, generate
from streams.internal import unpack
from streams.wire import HealingAction, ThreatEvent, event_id_for
from tests.streams.conftest import BIN, drain, metric_sum, unique_prefix, wait_for, wait_pipeline_idle

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
ATTACKER = "198.51.100.77"


def _produce_to(bootstrap: str, topic: str, items: list[tuple[int, bytes | None, bytes]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    for partition, key, value in items:
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=partition)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


class _Pacer(threading.Thread):
    """Produces `items` at about `per_s` messages a second, in tenths of a second, in the background."""

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[int, bytes | None, bytes]], per_s: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.items, self.per_s = bootstrap, topic, items, per_s
        self.done = threading.Event()  # every item sent and acknowledged
        self.error: BaseException | None = None

    def run(self) -> None:
        from confluent_kafka import Producer

        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
            step = max(self.per_s // 10, 1)
            start = time.monotonic()
            for n in range(0, len(self.items), step):
                for partition, key, value in self.items[n:n + step]:
                    p.produce(self.topic, key=key, value=value, partition=partition)
                p.poll(0)
                time.sleep(max(start + (n + step) / self.per_s - time.monotonic(), 0.0))
            if p.flush(60):
                raise RuntimeError(f"{self.topic}: messages still unsent after 60 s")
            self.done.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test after join()
            self.error = exc


def _trace(bootstrap: str, prefix: str, app_id: str, ids: list[str]) -> dict[str, list]:
    """Where the internal topics hold these events: (topic, partition, offset, index in it, hop) per id."""
    found: dict[str, list] = {i: [] for i in ids}
    for stage in ("entity-hops", "to-score"):
        for m in drain(bootstrap, f"{prefix}{app_id}-{stage}", idle_s=2):
            hops = unpack(m.value())
            for index, hop in enumerate(hops):
                if hop.get("id") in found:
                    found[hop["id"]].append((stage, m.partition(), m.offset(), index, hop.get("i")))
    return found


def test_sigkill_mid_stream_loses_nothing_and_windows_continue(kafka_bootstrap: str, start_worker, kafka_admin) -> None:
    _crash_and_recover(kafka_bootstrap, start_worker, kafka_admin, background_s=240, kill_every_s=None)


@pytest.mark.reliability
def test_sigkill_every_20_s_loses_nothing_and_windows_continue(kafka_bootstrap: str, start_worker, kafka_admin) -> None:
    _crash_and_recover(kafka_bootstrap, start_worker, kafka_admin, background_s=3600, kill_every_s=20.0, kills=6)


def _crash_and_recover(kafka_bootstrap: str, start_worker, kafka_admin, *, background_s: int,
                       kill_every_s: float | None, kills: int = 1) -> None:
    """Kill the worker mid-stream (once as the attacker's failures arrive, or every `kill_every_s`); restart; check all."""
    from confluent_kafka.admin import NewTopic

    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    for name in ("logs.raw", "flows.raw"):
        kafka_admin.create_topics([NewTopic(prefix + name, num_partitions=4, replication_factor=1)])[prefix + name].result(30)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(seconds=max(900, background_s + 60))
    # One brute-force source alone on partition 0 of logs.raw: 2,400 failures, one every 250 ms
    # (10 min of event time).
    brute = [(0, ATTACKER.encode(),
              f"{(t0 + timedelta(milliseconds=250 * i)):%b %e %H:%M:%S} bastion sshd[{4000 + i}]: "
              f"Failed password for root from {ATTACKER} port {30000 + i} ssh2".encode())
             for i in range(2400)]
    background = generate(ScenarioConfig(seed=31, duration_s=background_s, start=t0, attacks=()))
    logs = brute + [(1 + i % 3, r.actor.encode(), r.payload) for i, r in enumerate(background) if r.topic == "logs"]
    flows = [(i % 4, r.actor.encode(), r.payload) for i, r in enumerate(background) if r.topic == "flows"]
    total = len(logs) + len(flows)
    # One crash: the attacker's failures arrive live (150/s, 16 s) while the worker runs, so the kill
    # lands mid-stream with work in flight. A backlog alone is read in seconds, too fast to aim at.
    live = kill_every_s is None
    _produce_to(kafka_bootstrap, prefix + "logs.raw", logs[len(brute):] if live else logs)
    _produce_to(kafka_bootstrap, prefix + "flows.raw", flows)

    # Snapshots at most every 5 s on the first worker: the kill then always finds applied input
    # not yet acknowledged, which the next worker must read again without counting it twice.
    first = start_worker(app_id, prefix, emit_scored=True, batch_size=200, session_timeout_s=8,
                         **({"window_snapshot_min_s": 5} if kill_every_s is None else {}))
    if live:
        # The background first, so that when the kill comes depends on the attacker's pace alone.
        wait_for(lambda: metric_sum(first.metrics(), "streamguard_events_total") >= total - len(brute), 180,
                 "the background scored", first.log_tail)
        pacer = _Pacer(kafka_bootstrap, prefix + "logs.raw", brute, 150)
        pacer.start()
        try:
            # Read from the metric: the topic cannot be drained while the failures keep arriving.
            wait_for(lambda: metric_sum(first.metrics(), "streamguard_events_total") >= total - len(brute) + 300, 60,
                     "the attacker's first failures scored", first.log_tail)
            first.stop(signal.SIGKILL)
            assert not pacer.done.is_set(), "the crash should come before the attacker's last failure is sent"
        finally:
            pacer.join(120)
        assert pacer.done.is_set() and pacer.error is None, f"producing the attacker's failures: {pacer.error!r}"
        assert first.proc.returncode == -signal.SIGKILL
        before = [ThreatEvent.model_validate_json(m.value()) for m in drain(kafka_bootstrap, prefix + "events.scored", idle_s=2)]
        seen_before = [t.features["src_failed_logins_10m"] for t in before if t.entity.value == ATTACKER]
        assert seen_before and 0 < max(seen_before) < 2400, "the crash should hit the attacker mid-stream"
    else:
        for _ in range(kills):
            time.sleep(kill_every_s)
            first.stop(signal.SIGKILL)
            assert first.proc.returncode == -signal.SIGKILL
            first = start_worker(app_id, prefix, emit_scored=True, batch_size=200, session_timeout_s=8)
        first.stop(signal.SIGKILL)

    second = start_worker(app_id, prefix, emit_scored=True, batch_size=200, session_timeout_s=8)

    # Every stage committed all its input: every verdict is out (redelivered duplicates too).
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 400,
                       lambda: second.log_tail() + "\n" + second.get("/debug/tasks")[1].decode())
    scored = [ThreatEvent.model_validate_json(m.value()) for m in
              drain(kafka_bootstrap, prefix + "events.scored", idle_s=1)]
    by_id: dict[str, list[ThreatEvent]] = defaultdict(list)
    for t in scored:
        by_id[t.event_id].append(t)
    # Every input accounted for; a redelivered one keeps its id and its verdict's event.
    positions = {event_id_for(f"{prefix}{topic}.raw:{p}:{o}"): (topic, p, o)
                 for topic, items in (("logs", logs), ("flows", flows))
                 for p in range(4) for o in range(sum(1 for q, *_ in items if q == p))}
    missing = sorted(positions[i] for i in positions.keys() - by_id.keys())
    assert not missing, (f"{len(missing)} inputs never scored (topic, partition, offset): {missing[:20]}; "
                         f"rebalance re-fetches {metric_sum(second.metrics(), 'streamguard_rebalance_refetch_total')}; "
                         f"where they got to: {_trace(kafka_bootstrap, prefix, app_id, [i for i in positions if i not in by_id][:20])}")
    assert len(by_id) == total
    assert all(len({t.event_time_ms for t in ts}) == 1 for ts in by_id.values())
    # The oracle: the same failures through the same windows, uninterrupted. Syslog stamps
    # have 1-s resolution (four failures share each), so events are told apart by source port.
    store = WindowStore()
    idx = FEATURE_NAMES.index("src_failed_logins_10m")
    parsed = [parse_line(v, now=now, bounds=None) for _, _, v in brute]
    offline = {30000 + i: store.observe(e)[idx] for i, e in enumerate(parsed)}
    # What an event's window can hold at most: everything up to the end of its 10-s bucket.
    bucket_end: dict[int, float] = {}
    for i, e in enumerate(parsed):
        bucket_end[e.ts_ms // 10_000] = max(bucket_end.get(e.ts_ms // 10_000, 0.0), offline[30000 + i])
    ceiling = {30000 + i: bucket_end[e.ts_ms // 10_000] for i, e in enumerate(parsed)}
    copies = [t for ts in by_id.values() for t in ts if t.entity.value == ATTACKER]
    assert len({t.event["src_port"] for t in copies}) == 2400
    by_port: dict[int, list[float]] = defaultdict(list)
    for t in copies:
        by_port[t.event["src_port"]].append(t.features["src_failed_logins_10m"])
    final = offline[32399]
    assert final > 2300
    # Nothing restarted at zero: no verdict counts less than the uninterrupted run. An event
    # whose hop is redelivered is rescored with the state as it is by then (later events of its
    # batch may be in), so it may count more, but never beyond its bucket's full count.
    under = sorted((p - 30000, min(v), offline[p]) for p, v in by_port.items() if min(v) < offline[p])
    assert not under, f"{len(under)} events counted less than uninterrupted (index, stream, offline): {under[:8]}"
    over = sorted((p - 30000, max(v), ceiling[p]) for p, v in by_port.items() if max(v) > ceiling[p])
    assert not over, f"copies counting more than their bucket holds (double counting): {over[:8]}"
    # Almost every event's verdict is the exact uninterrupted one.
    exact = sum(min(v) == offline[p] for p, v in by_port.items())
    assert exact >= 0.9 * 2400, exact
    # No input counted twice: the last failure sees exactly the uninterrupted total.
    assert by_port[32399] and set(by_port[32399]) == {final}
    assert sum(len(v) > 1 for v in by_port.values()) < 2400  # the crash did cause some redelivery, not all
    last = max(copies, key=lambda t: t.event["src_port"])
    if kill_every_s is None:  # one crash mid-stream: the restarted worker met redelivered input
        rescored = sum(len(ts) > 1 for ts in by_id.values())
        skipped = metric_sum(second.metrics(), "streamguard_window_skips_total", reason="duplicate")
        assert rescored + skipped > 0, "the crash should cause some redelivery"
        print(f"redelivered: {rescored} inputs scored twice, {skipped:.0f} hops skipped as duplicates")
    assert last.ml_predicted_label == "brute_force"
    actions = [HealingAction.model_validate_json(m.value()) for m in drain(kafka_bootstrap, prefix + "actions.healing")]
    # One decision: a threat redelivered after the crash may send the same action again (same
    # id, same content, checked below), never a second block.
    assert [action for _, action in {(a.action_id, a.action) for a in actions if a.target == ATTACKER}] == ["block_ip"]
    contents: dict[str, set[str]] = defaultdict(set)
    for a in actions:
        contents[a.action_id].add(a.model_dump_json())
    assert all(len(v) == 1 for v in contents.values()), "one action id, two contents"


def test_replaying_linux_2k_blocks_repeat_offenders_only(kafka_bootstrap: str, start_worker, tmp_path: Path) -> None:
    prefix = unique_prefix()
    lines = (DATA / "loghub" / "Linux_2k.log").read_bytes().splitlines()
    # Hosts that only ever log in successfully, on the same days as the attacks.
    good_hosts = ["10.20.30.40", "10.20.30.41"]
    extra = []
    for i, line in enumerate(lines[::40]):
        stamp = line[:15].decode()
        extra.append(f"{stamp} combo sshd[{900 + i}]: Accepted password for alice from {good_hosts[i % 2]} port {40000 + i} ssh2".encode())
    replay_file = tmp_path / "linux_2k_plus_logins.log"
    replay_file.write_bytes(b"\n".join(lines + extra) + b"\n")

    now = datetime.now(UTC)
    events = [parse_line(x, now=now, bounds=None) for x in lines]
    failures: dict[str, list[datetime]] = defaultdict(list)
    for e in events:
        if e.auth_outcome is not None and e.auth_outcome.value in ("failure", "invalid_user") and e.src_ip:
            failures[e.src_ip].append(e.ts)
    # Expected: IP sources with at least 5 failures inside some 10 minutes.
    expected = {ip for ip, ts in failures.items()
                if any(sum(1 for u in ts if t <= u < t + timedelta(minutes=10)) >= 5 for t in ts)}
    assert len(expected) >= 10

    # A replay runs weeks of log in seconds: lift the circuit breaker (tested on its own).
    app_id = prefix.rstrip(".")
    w = start_worker(app_id, prefix, emit_scored=True, max_blocks_per_minute=10_000)
    proc = subprocess.run([str(BIN), "replay", str(replay_file)], env=w.env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    total = len(lines) + len(extra)
    wait_for(lambda: metric_sum(w.metrics(), "streamguard_events_total") >= total, 240, "the replay scored", w.log_tail)
    # Healing runs a stage behind scoring: wait until it has committed everything too.
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 240, w.log_tail)
    actions = [HealingAction.model_validate_json(m.value()) for m in drain(kafka_bootstrap, prefix + "actions.healing", idle_s=1)]
    blocked = {a.target for a in actions if a.action == "block_ip"}
    if not expected <= blocked:
        missed = expected - blocked
        scored = [ThreatEvent.model_validate_json(m.value()) for m in drain(kafka_bootstrap, prefix + "events.scored", idle_s=1)]
        seen = [(t.event.get("src_ip"), t.event_time_ms, t.ml_predicted_label, t.ml_risk_score, t.severity,
                 t.features.get("src_failed_logins_1m"), t.features.get("src_failed_logins_10m"))
                for t in scored if t.event.get("src_ip") in missed]
        raise AssertionError(f"not blocked: {sorted(missed)}; their scored events: {seen}")
    assert not (blocked & set(good_hosts))
    assert not [a for a in actions if a.target in good_hosts]
    # Only sources with failures are ever blocked.
    assert blocked <= set(failures)
    # Host names cannot be blocked at the IP layer: they are alerted on instead.
    named = {a.target for a in actions if a.target_type == "host"}
    assert named and all(a.action == "alert" for a in actions if a.target_type == "host")
    assert all(re.fullmatch(r"[0-9.]+", t) for t in blocked)


def test_corrupt_internal_messages_are_dead_lettered_not_fatal(kafka_bootstrap: str, start_worker) -> None:
    from tests.streams.conftest import produce

    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    w = start_worker(app_id, prefix, emit_scored=True)
    # What a bug (or a foreign producer) could leave on the internal topics.
    produce(kafka_bootstrap, f"{prefix}{app_id}-entity-hops", [(b"src:203.0.113.9", b"\x00not json"),
                                                               (b"src:203.0.113.9", b'{"route": 5}')])
    produce(kafka_bootstrap, f"{prefix}{app_id}-to-score", [(b"x", b"{truncated"), (b"y", b'{"ev": {"kind": "nope"}}')])
    now = datetime.now(UTC)
    good = [f"{(now - timedelta(seconds=30 - i)):%b %e %H:%M:%S} bastion sshd[{i}]: Accepted password for alice "
            f"from 10.1.1.{i} port {4000 + i} ssh2".encode() for i in range(20)]
    produce(kafka_bootstrap, f"{prefix}logs.raw", [(None, g) for g in good])
    wait_for(lambda: metric_sum(w.metrics(), "streamguard_events_total", outcome="scored") >= 20
             and metric_sum(w.metrics(), "streamguard_deadletters_total", reason="internal") >= 4,
             240, "good events scored and corrupt internal messages dead-lettered", w.log_tail)
    assert w.proc.poll() is None, "the worker must survive corrupt internal messages"
    # The metric counts a dead letter before it is on the topic: wait for them too.
    dls = [m.value() for m in drain(kafka_bootstrap, f"{prefix}ops.deadletter", until=lambda out: len(out) >= 4)]
    assert len(dls) == 4 and all(b'"reason":"internal"' in d for d in dls)
    assert json.loads(w.get("/health")[1])["consuming"]
