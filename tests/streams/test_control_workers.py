"""Signed control and model hot-swap on two real worker processes sharing one group."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from registry import LocalRegistry
from streams.control import Command, sign
from tests.conftest import SIGNING_SECRET
from tests.streams.conftest import BIN, drain, metric_sum, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration

SECRET = SIGNING_SECRET  # the secret the session model is signed with



def test_signed_commands_steer_both_workers_and_forged_ones_change_nothing(
        kafka_bootstrap: str, start_worker, model_registry: Path, tmp_path: Path) -> None:
    reg_dir = tmp_path / "registry"
    shutil.copytree(model_registry, reg_dir)
    env = {**os.environ, "STREAMGUARD_REGISTRY_DIR": str(reg_dir), "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "STREAMGUARD_SIGNING_SECRET": SECRET}
    prefix = unique_prefix()
    app_id = prefix.rstrip(".")
    # A second version trains (not activated) while the workers start on the active one.
    with ThreadPoolExecutor(1) as pool:
        training = pool.submit(subprocess.run, [str(BIN), "train", "--seeds", "3", "--eval-seeds", "100",
                                                "--duration", "240", "--no-activate"],
                               env=dict(env), capture_output=True, timeout=300)
        workers = [start_worker(app_id, prefix, ready=False, registry_dir=reg_dir, signing_secret=SECRET,
                                emit_scored=True, emit_shadow=True) for _ in range(2)]
        proc = training.result()
    assert proc.returncode == 0, proc.stderr.decode()
    reg = LocalRegistry(reg_dir)
    old = reg.active("streamguard").version
    new = next(v.version for v in reg.list("streamguard") if v.version != old)

    env["STREAMGUARD_TOPIC_PREFIX"] = prefix
    env["STREAMGUARD_APP_ID"] = app_id  # commands are signed for one deployment
    for w in workers:
        w.wait_ready()
    assert {w.model_version() for w in workers} == {old}

    # (Swapping under continuous traffic, with counts and the output pause, is measured in
    # test_model_rollout.py; here the command path alone.)
    proc = subprocess.run([str(BIN), "control", "promote", new, "--wait", "0"], env=env, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    t0 = time.monotonic()  # the command is on the topic
    # How fast is measured by `make bench` (a loaded machine may take longer): here only that it happens.
    wait_for(lambda: all(w.model_version() == new for w in workers), 120, "both workers serving the new version")
    print(f"\npromote: both workers on {new} {time.monotonic() - t0:.2f} s after the command")

    # Forged commands: unsigned, wrongly signed, replayed, and a signed one naming an altered artifact.
    control = f"{prefix}ops.control"
    envelopes = [m.value() for m in drain(kafka_bootstrap, control, idle_s=1)]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    unsigned = orjson.loads(envelopes[-1])
    unsigned.pop("signature")
    unsigned["command"] = {"op": "rollback", "version": old}
    forged = sign(Command(op="rollback", version=old), "not-the-secret", app_id=app_id,
                  now_ms=now_ms).model_dump_json().encode()
    # Signed with the right secret but for another deployment, or for the models topic.
    elsewhere = sign(Command(op="rollback", version=old), SECRET, app_id="another-deployment",
                     now_ms=now_ms).model_dump_json().encode()
    moved = sign(Command(op="rollback", version=old), SECRET, app_id=app_id, purpose="models",
                 now_ms=now_ms).model_dump_json().encode()
    artifact = reg.artifact_path("streamguard", old, verify=False)
    pristine = artifact.read_bytes()
    artifact.write_bytes(pristine + b"tampered")
    tampered = sign(Command(op="rollback", version=old), SECRET, app_id=app_id, now_ms=now_ms).model_dump_json().encode()
    produce(kafka_bootstrap, control, [(b"control", orjson.dumps(unsigned)), (b"control", forged),
                                       (b"control", envelopes[-1]), (b"control", elsewhere), (b"control", moved),
                                       (b"control", tampered)])

    def refused() -> bool:
        return all(metric_sum(w.metrics(), "streamguard_control_commands_total", outcome="rejected") >= 5
                   and metric_sum(w.metrics(), "streamguard_model_refused_total", reason="sha256_mismatch") >= 1
                   for w in workers)

    wait_for(refused, 120, "every forged command refused on both workers", workers[0].log_tail)
    for w in workers:
        m = w.metrics()
        for reason in ("unsigned", "bad_signature", "replayed", "wrong_deployment", "wrong_topic"):
            assert metric_sum(m, "streamguard_control_commands_total", outcome="rejected", reason=reason) == 1
        assert w.model_version() == new
    # A metric counts a command before its reply is on ops.status: wait for the replies too.
    def refusals(out: list) -> int:
        return sum(r["outcome"] == "failed" and r["reason"] == "sha256_mismatch" for r in map(_json, out))

    replies = [orjson.loads(m.value()) for m in drain(kafka_bootstrap, f"{prefix}ops.status", idle_s=1,
                                                      until=lambda out: refusals(out) >= 2)]
    assert sum(r["outcome"] == "failed" and r["reason"] == "sha256_mismatch" for r in replies) == 2

    # A signed rollback through the CLI brings the old version back on both.
    artifact.write_bytes(pristine)
    proc = subprocess.run([str(BIN), "control", "rollback", "--wait", "120", "--expect", "2"], env=env,
                          capture_output=True, timeout=180)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    wait_for(lambda: all(w.model_version() == old for w in workers), 120, "both workers back on the old version")
    assert reg.active("streamguard").version == old

    # Operator switches reach both workers; `status` answers for each.
    for args in (["set-threshold", "85"], ["dry-run", "on"], ["pause"], ["allowlist", "add", "198.51.100.0/24"]):
        proc = subprocess.run([str(BIN), "control", *args, "--wait", "120", "--expect", "2"], env=env,
                              capture_output=True, timeout=180)
        assert proc.returncode == 0, (args, proc.stdout.decode() + proc.stderr.decode())
    for w in workers:
        h = json.loads(w.get("/health")[1])
        assert h["threat_threshold"] == 85 and h["dry_run"] and h["paused"]
    proc = subprocess.run([str(BIN), "control", "status", "--wait", "120", "--expect", "2"], env=env,
                          capture_output=True, timeout=180)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0 and out.count("applied") == 2, out

    _challenger_shadow_ab_and_promotion(kafka_bootstrap, env, prefix, workers, old, new)


def _json(message) -> dict:
    return orjson.loads(message.value())


def _control(env: dict, *args: str) -> str:
    proc = subprocess.run([str(BIN), "control", *args, "--wait", "120", "--expect", "2"], env=env,
                          capture_output=True, timeout=180)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, (args, out)
    return out


def _failures(prefix: str, sources: range, first_pid: int) -> list[tuple[bytes, bytes]]:
    """Six sshd failures from each source, in one minute, keyed by source."""
    items = []
    for n in sources:
        for i in range(6):
            line = (f"Jan  5 09:00:{n % 50 + i:02d} bastion sshd[{first_pid + n * 6 + i}]: Failed password for "
                    f"root from 198.51.100.{n} port {40000 + i} ssh2")
            items.append((f"198.51.100.{n}".encode(), line.encode()))
    return items


def _challenger_shadow_ab_and_promotion(kafka_bootstrap: str, env: dict, prefix: str, workers: list, old: str,
                                        new: str) -> None:
    """A challenger scores beside the champion (shadow), then serves half the entities (A/B), then is promoted."""
    from scoring.challenger import served_by_challenger
    from streams.wire import ThreatEvent

    def health(w) -> dict:
        return json.loads(w.get("/health")[1])

    def scored_total() -> float:
        return sum(metric_sum(w.metrics(), "streamguard_served_events_total") for w in workers)

    _control(env, "challenger", new)
    for w in workers:
        assert health(w)["challenger"]["version"] == new and health(w)["challenger"]["ab_fraction"] == 0
        assert health(w)["model"]["version"] == old
    logs = f"{prefix}logs.raw"
    produce(kafka_bootstrap, logs, _failures(prefix, range(1, 41), 1000))  # 240 events
    wait_for(lambda: scored_total() >= 240, 180, "240 events scored", workers[0].log_tail)
    compared = sum(health(w)["challenger"]["events"] for w in workers)
    both = sum(metric_sum(w.metrics(), "streamguard_challenger_events_total") for w in workers)
    assert compared == both == 240
    assert sum(metric_sum(w.metrics(), "streamguard_served_events_total", role="challenger") for w in workers) == 0
    assert sum(metric_sum(w.metrics(), "streamguard_model_risk_count", role="challenger") for w in workers) == 240
    for w in workers:
        ratio = metric_sum(w.metrics(), "streamguard_challenger_agreement_ratio", compared="label")
        assert abs(ratio - health(w)["challenger"]["label_agreement"]) < 1e-3
    # The metrics count an event before its outputs are on the topics: wait for them too.
    scored = [ThreatEvent.model_validate_json(m.value()) for m in drain(kafka_bootstrap, f"{prefix}events.scored",
                                                                         idle_s=2, until=lambda out: len(out) >= 240)]
    assert len(scored) == 240 and {r.model.version for r in scored} == {old}  # shadow: nothing served changes
    shadow = [ThreatEvent.model_validate_json(m.value()) for m in drain(kafka_bootstrap, f"{prefix}threats.shadow",
                                                                         idle_s=2, until=lambda out: len(out) >= 240)]
    # emit_scored is on, so the shadow topic holds every challenger verdict, named by its version.
    assert len(shadow) == 240 and {r.model.version for r in shadow} == {new}
    assert {r.event_id for r in shadow} == {r.event_id for r in scored}
    print(f"\nshadow: label agreement {[health(w)['challenger']['label_agreement'] for w in workers]}, "
          f"decision agreement {[health(w)['challenger']['decision_agreement'] for w in workers]}")

    # A/B: half of the entities get the challenger's verdicts, each entity always from one model.
    _control(env, "challenger", new, "--ab", "0.5")
    assert sum(health(w)["challenger"]["events"] for w in workers) == 240  # same challenger: its counts go on
    produce(kafka_bootstrap, logs, _failures(prefix, range(41, 101), 5000))  # 360 events, 60 sources
    wait_for(lambda: scored_total() >= 600, 180, "600 events scored", workers[0].log_tail)
    ab_sources = {f"198.51.100.{n}" for n in range(41, 101)}
    every = [ThreatEvent.model_validate_json(m.value()) for m in drain(kafka_bootstrap, f"{prefix}events.scored",
                                                                        idle_s=2, until=lambda out: len(out) >= 600)]
    assert len(every) == 600
    later = [r for r in every if r.entity.value in ab_sources]
    assert len(later) == 360
    by_entity: dict[str, set[str]] = {}
    for r in later:
        by_entity.setdefault(r.entity.value, set()).add(r.model.version)
    assert len(by_entity) == 60
    for entity, versions in by_entity.items():
        assert versions == {new if served_by_challenger(entity, 0.5) else old}, entity
    on_new = sum(served_by_challenger(e, 0.5) for e in by_entity)
    assert 0 < on_new < 60
    assert sum(metric_sum(w.metrics(), "streamguard_served_events_total", role="challenger")
               for w in workers) == on_new * 6

    # Promoting the challenger ends the challenge; a challenger equal to the champion is refused.
    _control(env, "promote", new)
    for w in workers:
        assert health(w)["model"]["version"] == new and health(w)["challenger"] is None
    proc = subprocess.run([str(BIN), "control", "challenger", new, "--wait", "120", "--expect", "2"], env=env,
                          capture_output=True, timeout=180)
    assert proc.returncode == 1 and (proc.stdout + proc.stderr).decode().count("is the serving model") == 2
