"""The Faust plumbing: 10,000 messages through an agent in a real `faust worker` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, unique

pytestmark = pytest.mark.integration

N = 10_000


def test_faust_worker_forwards_every_message(
    kafka_bootstrap: str, make_topic, make_producer, make_consumer, tmp_path: Path
) -> None:
    source = make_topic("faust-in", partitions=4)
    sink = make_topic("faust-out", partitions=4)
    producer = make_producer()
    for i in range(N):
        producer.produce(source, key=f"k{i % 101}".encode(), value=f"{i}".encode())
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    env = {
        **os.environ,
        "ECHO_APP_ID": unique("echo"),
        "ECHO_BROKER": f"kafka://{kafka_bootstrap}",
        "ECHO_DATADIR": str(tmp_path / "faust"),
        "ECHO_IN": source,
        "ECHO_OUT": sink,
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.streams.faust_echo_app", "worker", "--loglevel=warn"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        consumer = make_consumer(sink)
        seen: set[int] = set()
        deadline = time.monotonic() + 120
        while len(seen) < N and time.monotonic() < deadline:
            assert worker.poll() is None, "worker died:\n" + (tmp_path / "worker.log").read_text()[-4000:]
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                assert msg.error() is None, msg.error()
                seen.add(int(msg.value()))
        assert seen == set(range(N)), f"{len(seen)} of {N} forwarded:\n" + (tmp_path / "worker.log").read_text()[-4000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    # A clean shutdown on SIGTERM: Faust exits 0 (or by the signal), not with a crash.
    assert worker.returncode in (0, -signal.SIGTERM), (tmp_path / "worker.log").read_text()[-4000:]
