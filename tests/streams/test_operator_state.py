"""Operator switches only move forward: the signed state record, restarts, retention and a stale capture."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.control import Command, sign
from streams.operator_state import OperatorState, PromotionWatch, sign_state, verify_state
from tests.conftest import SIGNING_SECRET

SECRET = SIGNING_SECRET  # the secret the session model is signed with


def _state(**over) -> OperatorState:
    fields = dict(app_id="sg-a", position={"0": 7}, threat_threshold=85, paused=False, dry_run=True,
                  allowlist=["10.0.0.0/8"], nonces={"n" * 16: 1}, written_at_ms=1, writer="w1")
    return OperatorState(**{**fields, **over})


def test_a_state_record_is_accepted_only_signed_for_its_deployment() -> None:
    raw = sign_state(_state(), SECRET)
    assert verify_state(raw, SECRET, "sg-a") == _state(signature=json.loads(raw)["signature"])
    assert verify_state(raw, SECRET, "sg-b") is None  # another deployment's record
    assert verify_state(raw, "another-secret", "sg-a") is None
    tampered = json.loads(raw)
    tampered["dry_run"] = False
    assert verify_state(json.dumps(tampered).encode(), SECRET, "sg-a") is None
    unsigned = json.loads(raw)
    unsigned["signature"] = ""
    assert verify_state(json.dumps(unsigned).encode(), SECRET, "sg-a") is None
    for junk in (b"", b"{}", b"[]", b"\xff"):
        assert verify_state(junk, SECRET, "sg-a") is None


def test_a_promotion_watch_is_signed_with_the_record() -> None:
    watched = _state(watch=PromotionWatch(version="v2", against="v1"))
    raw = sign_state(watched, SECRET)
    assert verify_state(raw, SECRET, "sg-a").watch == PromotionWatch(version="v2", against="v1")
    moved = json.loads(raw)
    moved["watch"]["against"] = "v0"  # whoever rewrites it cannot choose what a version is compared with
    assert verify_state(json.dumps(moved).encode(), SECRET, "sg-a") is None
    dropped = json.loads(raw)
    del dropped["watch"]  # nor end a watch by leaving it out
    assert verify_state(json.dumps(dropped).encode(), SECRET, "sg-a") is None


def test_a_record_written_before_watches_existed_still_verifies() -> None:
    from streams.control import mac

    # Signed the way a worker of the earlier version signed it: no `watch` key in the body.
    body = _state().model_dump(mode="json", exclude={"signature", "watch"})
    old = {**body, "signature": mac(SECRET, {"purpose": "operator-state", "app_id": "sg-a", "state": body})}
    restored = verify_state(json.dumps(old).encode(), SECRET, "sg-a")
    assert restored is not None and restored.watch is None and restored.dry_run is True


def test_the_furthest_record_wins() -> None:
    assert _state(position={"0": 8}).ahead_of(_state())
    assert not _state().ahead_of(_state(position={"0": 8}))
    assert _state().ahead_of(None)


# --- real workers ---------------------------------------------------------------------------------


def _health(w) -> dict:
    return json.loads(w.get("/health")[1])


def _control(env: dict, *args: str) -> None:
    from tests.streams.conftest import BIN

    proc = subprocess.run([str(BIN), "control", *args, "--wait", "120", "--expect", "1"], env=env,
                          capture_output=True, timeout=180)
    assert proc.returncode == 0, (args, (proc.stdout + proc.stderr).decode())


@pytest.mark.integration
def test_switches_survive_restarts_and_retention_and_a_stale_capture_is_never_applied(
        kafka_bootstrap: str, start_worker, tmp_path: Path) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from tests.streams.conftest import metric_sum, produce, unique_prefix, wait_for

    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMGUARD_SIGNING_SECRET": SECRET,
           "STREAMGUARD_TOPIC_PREFIX": prefix, "STREAMGUARD_APP_ID": app_id}
    w = start_worker(app_id, prefix, signing_secret=SECRET)
    assert (_health(w)["threat_threshold"], _health(w)["dry_run"]) == (70, False)
    _control(env, "set-threshold", "85")
    _control(env, "dry-run", "on")
    _control(env, "allowlist", "add", "198.51.100.0/24")
    # A command captured ten minutes ago: refused live as stale, and never applied later.
    old_ms = int(datetime.now(UTC).timestamp() * 1000) - 600_000
    stale = sign(Command(op="dry_run", on=False), SECRET, app_id=app_id, now_ms=old_ms).model_dump_json().encode()
    produce(kafka_bootstrap, f"{prefix}ops.control", [(b"control", stale)])
    wait_for(lambda: metric_sum(w.metrics(), "streamguard_control_commands_total", outcome="rejected",
                                reason="stale") == 1, 120, "the stale command refused", w.log_tail)

    def restart(worker):
        worker.stop(signal.SIGKILL)
        return start_worker(app_id, prefix, signing_secret=SECRET)

    w = restart(w)
    h = _health(w)  # ready: the state is loaded before the agents start
    assert (h["threat_threshold"], h["dry_run"]) == (85, True), h

    # The control topic's records age out (retention): the switches do not.
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    md = admin.list_topics(f"{prefix}ops.control", timeout=30)
    ends = [TopicPartition(f"{prefix}ops.control", p, -1) for p in md.topics[f"{prefix}ops.control"].partitions]
    for fut in admin.delete_records(ends).values():
        fut.result(30)
    w = restart(w)
    h = _health(w)
    assert (h["threat_threshold"], h["dry_run"]) == (85, True), h
    # And they still move forward from there.
    _control(env, "dry-run", "off")
    assert _health(w)["dry_run"] is False


@pytest.mark.integration
def test_a_restarted_control_consumer_does_not_go_back_in_time(kafka_bootstrap: str, model_registry: Path) -> None:
    """Dry run on at T, off at T + the window, then the consumer restarts: dry run stays off.

    Before the state record, a restart re-read the history: the older command's nonce had
    left the window's memory and was applied again, the newer one was refused as a replay.
    """
    from registry import LocalRegistry
    from scoring.bundle import load_bundle
    from streams.agents.context import Topics
    from streams.metrics import Metrics
    from streams.operations import Operations
    from streams.operator_state import TOPIC_CONFIG, load_operator_state, state_topic, topic_ends
    from streams.serving import Serving
    from streams.settings import Settings
    from streams.topics import topic_names
    from tests.streams.conftest import produce, unique_prefix

    prefix = unique_prefix()
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, app_id=prefix.rstrip("."),
                 signing_secret=SECRET, control_window_s=10)  # a loaded machine can take seconds to read a command
    from streams.kafka import ensure_topics

    names = topic_names(s)
    ensure_topics(kafka_bootstrap, [names.control, names.retrain, names.status], 1)
    ensure_topics(kafka_bootstrap, [state_topic(s)], 1, config=TOPIC_CONFIG)
    reg = LocalRegistry(model_registry)
    info = reg.active("streamguard")
    bundle = load_bundle(reg.artifact_path(info.name, info.version), info.sha256)
    metrics = Metrics()
    ctx = types.SimpleNamespace(settings=s, names=names, metrics=metrics, worker_id="test-worker",
                                now_ms=lambda: int(time.time() * 1000),
                                topics=Topics(*([None] * 11)))
    serving = Serving(s, bundle, metrics)
    ops = Operations(ctx, serving, lambda: reg, state_topic=state_topic(s))
    ops.restore(*load_operator_state(kafka_bootstrap, state_topic(s), SECRET, s.app_id)[:1],
                topic_ends(kafka_bootstrap, names.control))

    def command(op: Command) -> None:
        env = sign(op, SECRET, app_id=s.app_id, now_ms=int(time.time() * 1000))
        produce(kafka_bootstrap, names.control, [(b"control", env.model_dump_json().encode())])

    async def until(predicate, what: str) -> None:
        for _ in range(1200):
            if predicate():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def applied() -> float:
        return sum(v for (n, lab), v in _samples(metrics).items()
                   if n == "streamguard_control_commands_total" and ("outcome", "applied") in lab)

    async def scenario() -> None:
        task = asyncio.create_task(ops.run())
        command(Command(op="dry_run", on=True))
        await until(lambda: serving.policy.dry_run, "dry run on")
        await asyncio.sleep(s.control_window_s + 1)  # the first command's nonce leaves the window
        command(Command(op="dry_run", on=False))
        await until(lambda: not serving.policy.dry_run, "dry run off")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        task = asyncio.create_task(ops.run())  # the consumer restarts
        command(Command(op="status"))
        await until(lambda: applied() >= 3, "the status command after the restart")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert serving.policy.dry_run is False
    assert applied() == 3  # on, off, status: nothing of the history again


def _samples(metrics) -> dict:
    from tests.streams.conftest import parse_metrics

    return parse_metrics(metrics.render().decode())
