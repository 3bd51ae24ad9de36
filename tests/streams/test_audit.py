"""The audit trail: every control message a worker read, with its issuer and outcome, on ops.audit and in MongoDB."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams.control import Command, sign
from streams.wire import AuditRecord, StatusReply, audit_record
from tests.conftest import SIGNING_SECRET
from tests.streams.conftest import drain, produce, run_cli, unique_prefix, wait_for


def test_an_audit_id_is_the_same_for_the_same_reply_and_differs_per_worker() -> None:
    reply = StatusReply(worker="h:1", app_id="a", at_ms=5, nonce="n" * 16, op="pause", outcome="applied",
                        reason="pause", detail="paused", state={"model": {"name": "m", "version": "v7"}})
    one = audit_record(reply, issuer="cli@h", verified=True)
    assert one == audit_record(reply, issuer="cli@h", verified=True)
    assert one.model_version == "v7" and one.op == "pause" and one.issuer_verified
    other = audit_record(reply.model_copy(update={"worker": "h:2"}), issuer="cli@h", verified=True)
    assert other.audit_id != one.audit_id



@pytest.mark.integration
def test_commands_and_forgeries_are_audited_with_issuer_and_outcome(kafka_bootstrap: str, start_worker, mongo_db,
                                                                     mongo_uri: str, tmp_path: Path) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    worker = start_worker(app_id, prefix, mongo_uri=mongo_uri, mongo_database=mongo_db.name)
    env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMGUARD_TOPIC_PREFIX": prefix,
           "STREAMGUARD_APP_ID": app_id, "STREAMGUARD_SIGNING_SECRET": SIGNING_SECRET, "COLUMNS": "200"}
    env.pop("STREAMGUARD_MONGO_URI", None)
    for args in (("set-threshold", "85"), ("pause",)):
        done = run_cli(env, "control", *args, "--wait", "120", "--expect", "1")
        assert done.returncode == 0, done.stdout + done.stderr
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    forged = sign(Command(op="resume_actions"), "not-the-secret-at-all-0123456789", app_id=app_id, now_ms=now_ms,
                  issuer="mallory@nowhere")
    unsigned = orjson.loads(forged.model_dump_json())
    unsigned.pop("signature")
    produce(kafka_bootstrap, f"{prefix}ops.control", [(b"control", forged.model_dump_json().encode()),
                                                      (b"control", orjson.dumps(unsigned))])

    def records() -> list[AuditRecord]:
        return [AuditRecord.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}ops.audit",
                                                                         idle_s=1.0)]

    wait_for(lambda: len(records()) >= 4, 120, "four audit records", worker.log_tail)
    got = records()
    assert len(got) == 4 and len({r.audit_id for r in got}) == 4
    by_op = {(r.op, r.outcome, r.reason): r for r in got}
    print("\n" + "\n".join(f"{r.op} {r.outcome} {r.reason} {r.issuer!r} {r.issuer_verified}" for r in got))
    me = f"cli@{socket.gethostname()}"
    applied = by_op[("set_threshold", "applied", "set_threshold")]
    assert applied.issuer == me and applied.issuer_verified and applied.worker.endswith(f":{worker.proc.pid}")
    assert by_op[("pause_actions", "applied", "pause_actions")].issuer == me
    bad = by_op[("resume_actions", "rejected", "bad_signature")]
    assert bad.issuer == "mallory@nowhere" and not bad.issuer_verified
    assert by_op[("resume_actions", "rejected", "unsigned")].issuer_verified is False

    # Without MongoDB, `streamguard audit` reads the topic; with it, the sink's collection.
    listed = run_cli(env, "audit", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["audit_id"] for r in rows] == [r.audit_id for r in sorted(got, key=lambda r: r.at_ms, reverse=True)]
    wait_for(lambda: mongo_db["audit"].count_documents({}) == 4, 120, "the sink to store the audit trail",
             worker.log_tail)
    with_mongo = {**env, "STREAMGUARD_MONGO_URI": mongo_uri, "STREAMGUARD_MONGO_DATABASE": mongo_db.name}
    listed = run_cli(with_mongo, "audit", "--outcome", "rejected", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(line)["reason"] for line in listed.stdout.splitlines()) == ["bad_signature", "unsigned"]
    table = run_cli(with_mongo, "audit", "--op", "pause_actions")
    assert table.returncode == 0 and "audit (1)" in table.stdout and "pause" in table.stdout
