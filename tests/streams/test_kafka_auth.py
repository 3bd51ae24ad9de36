"""Kafka authentication: a worker and the CLI over SASL_PLAINTEXT with SCRAM-SHA-512.

The local broker has a SCRAM listener beside its plaintext one; the test creates a user
through the plaintext listener. A worker with the wrong password stops with a clear error;
with the right one, Faust (aiokafka), the control reader and the CLI (confluent-kafka) all
work through the authenticated listener.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.streams.conftest import BIN, metric_sum, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration


def _create_user(kafka_bootstrap: str, user: str, password: str) -> None:
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          password.encode())
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(30)


def test_a_worker_and_the_cli_authenticate_with_scram(kafka_bootstrap: str, kafka_sasl_bootstrap: str,
                                                      start_worker) -> None:
    user, password = f"sg-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    _create_user(kafka_bootstrap, user, password)
    auth = dict(kafka_bootstrap=kafka_sasl_bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=user)
    prefix = unique_prefix()
    app_id = prefix.rstrip(".")

    wrong = start_worker(app_id, prefix, ready=False, kafka_sasl_password="not-the-password", **auth)
    deadline = time.monotonic() + 180  # a ceiling: the worker gives up after its own connect timeout
    while wrong.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert wrong.proc.poll() not in (None, 0), "a worker with a wrong password kept running"
    log = " ".join(wrong.log_tail().split())  # the error is wrapped to the terminal's width
    assert "authentication failed" in log and "invalid credentials" in log, log

    w = start_worker(app_id, prefix, kafka_sasl_password=password, **auth)
    # Events written through the plaintext listener are consumed by Faust through the SCRAM one.
    now = datetime.now(UTC)
    lines = [f"{now:%b %d %H:%M:%S} gate sshd[{i}]: Failed password for root from 203.0.113.77 port {40000 + i} "
             "ssh2".encode() for i in range(20)]
    produce(kafka_bootstrap, f"{prefix}logs.raw", [(b"203.0.113.77", line) for line in lines])
    wait_for(lambda: metric_sum(w.metrics(), "streamguard_events_total") >= 20, 120, "the events scored",
             w.log_tail)
    # The CLI (confluent-kafka) signs a command over SCRAM; the worker's control reader (aiokafka) answers.
    env = {**os.environ, **{f"STREAMGUARD_{k.upper()}": v for k, v in auth.items()},
           "STREAMGUARD_KAFKA_SASL_PASSWORD": password, "STREAMGUARD_TOPIC_PREFIX": prefix,
           "STREAMGUARD_APP_ID": app_id}
    proc = subprocess.run([str(BIN), "control", "status", "--wait", "120", "--expect", "1"], env=env,
                          capture_output=True, timeout=180)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0 and "applied" in out, out
