"""Fixtures for tests that run real `streamguard worker` processes against the session broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, SIGNING_SECRET, once_per_run

BIN = Path(sys.executable).parent / "streamguard"


@dataclass(frozen=True)
class TrainedRegistry:
    """The session's registry and the `streamguard train` run that made it."""

    root: Path
    proc: subprocess.CompletedProcess  # returncode and stderr of the run
    scratch: Path  # the run's TMPDIR, empty if train cleaned up after itself


# Workers refuse the default secret, and load only model records signed with theirs.
WORKER_SECRET = SIGNING_SECRET
TRAIN_ARGS = ["train", "--seeds", "0,1", "--eval-seeds", "100", "--duration", "300"]


@pytest.fixture(scope="session")
def trained_registry(pytestconfig: pytest.Config) -> TrainedRegistry:
    """A registry with a small generator-trained bundle, made active, trained through the CLI
    once per test run (xdist workers share it: the first to ask trains, the others wait)."""

    def train(folder: Path) -> None:
        (folder / "registry").mkdir()
        (folder / "scratch").mkdir()
        proc = subprocess.run([str(BIN), *TRAIN_ARGS],
                              env={**os.environ, "STREAMGUARD_REGISTRY_DIR": str(folder / "registry"),
                                   "TMPDIR": str(folder / "scratch")}, capture_output=True, timeout=600)
        (folder / "stderr").write_bytes(proc.stderr)
        (folder / "returncode").write_text(str(proc.returncode))

    folder = once_per_run(pytestconfig, "trained-registry", train)
    proc = subprocess.CompletedProcess([str(BIN), *TRAIN_ARGS], int((folder / "returncode").read_text()),
                                       stderr=(folder / "stderr").read_bytes())
    return TrainedRegistry(folder / "registry", proc, folder / "scratch")


@pytest.fixture(scope="session")
def model_registry(trained_registry: TrainedRegistry) -> Path:
    """A registry with a small generator-trained bundle, made active (trained once per run; do not
    change it: copy it first)."""
    assert trained_registry.proc.returncode == 0, trained_registry.proc.stderr.decode()
    return trained_registry.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus exposition text as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric_sum(metrics: dict, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include the given ones."""
    return sum(v for (n, lab), v in metrics.items() if n == name and all((k, v2) in lab for k, v2 in labels.items()))


@dataclass
class Worker:
    """A running worker process and how to reach it."""

    proc: subprocess.Popen
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def model_version(self) -> str:
        """The version the worker serves, from /health."""
        return json.loads(self.get("/health")[1])["model"]["version"]

    def metrics(self) -> dict:
        status, body = self.get("/metrics")
        assert status == 200
        return parse_metrics(body.decode())

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "worker exited:\n" + self.log_tail()
            try:
                status, _ = self.get("/health", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("worker not ready in time:\n" + self.log_tail())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop_all(workers: list[Worker], timeout: float = 60.0) -> None:
    """SIGTERM every running worker at once, then wait for each (killed after `timeout`)."""
    running = [w for w in workers if w.proc.poll() is None]
    for w in running:
        w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for w in running:
        try:
            w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


@pytest.fixture
def start_worker(kafka_bootstrap: str, model_registry: Path, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Factory: start a worker with STREAMGUARD_* overrides and wait until /health says it consumes.

    With `ready=False` it returns at once: start several, then `wait_ready()` each.
    """
    workers: list[Worker] = []

    def _start(app_id: str, prefix: str, *, ready: bool = True, **settings: object) -> Worker:
        port = free_port()
        env = {
            **os.environ,
            "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "STREAMGUARD_APP_ID": app_id,
            "STREAMGUARD_TOPIC_PREFIX": prefix,
            "STREAMGUARD_METRICS_PORT": str(port),
            "STREAMGUARD_REGISTRY_DIR": str(model_registry),
            "STREAMGUARD_DATA_DIR": str(tmp_path / f"{app_id}-{port}"),
            "STREAMGUARD_SIGNING_SECRET": WORKER_SECRET,  # workers refuse the default
            **{f"STREAMGUARD_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in settings.items()},
        }
        log = tmp_path / f"worker-{app_id}-{port}.log"
        loglevel = os.environ.get("STREAMGUARD_TEST_WORKER_LOGLEVEL", "warn")
        proc = subprocess.Popen([str(BIN), "worker", f"--loglevel={loglevel}"], cwd=ROOT, env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        w = Worker(proc, port, log, env)
        workers.append(w)
        if ready:
            w.wait_ready()
        return w

    yield _start
    stop_all(workers)


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `streamguard ARGS` with `env`; its exit code and text output, never raising on failure."""
    return subprocess.run([str(BIN), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce (key, value) pairs and wait until all are acknowledged."""
    produce_mixed(bootstrap, [(topic, key, value) for key, value in items])


def produce_mixed(bootstrap: str, items: list[tuple[str, bytes | None, bytes | None]], *,
                  rate: float | None = None) -> None:
    """Produce (topic, key, value) in this order, as traffic of several sources arrives; wait for all acks.

    With `rate` (messages/s) the items are spread over time like live traffic, not a backlog.
    """
    from confluent_kafka import Producer

    start = time.monotonic()

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "message.max.bytes": 8_000_000,
                  "enable.idempotence": True})
    errors: list[str] = []
    for i, (topic, key, value) in enumerate(items):
        while True:
            try:
                p.produce(topic, key=key, value=value,
                          on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
                break
            except BufferError:
                p.poll(0.1)
        if i % 2000 == 0:
            p.poll(0)
        if rate and i % 100 == 0:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                p.poll(0)
                time.sleep(ahead)
    assert p.flush(60) == 0
    assert errors == []


def _watermarks(consumer, tp, deadline: float) -> tuple[int, int]:
    """(low, high) offsets of a partition, retried while it has no leader yet (a topic just created)."""
    from confluent_kafka import KafkaException

    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=30)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def drain(bootstrap: str, topic: str, *, idle_s: float = 3.0, timeout_s: float = 120.0,
          until: Callable[[list], bool] | None = None) -> list:
    """All messages of a topic from the beginning: every message on it when called, then more until
    `until` holds (if given) and nothing came for idle_s.

    Read by assignment, not as a group member: joining a group can take seconds on a loaded
    machine, and the idle time counts only once the messages present at the call are read.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    out: list = []
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        partitions: list[int] = []
        while time.monotonic() < deadline:
            md = c.list_topics(topic, timeout=30).topics.get(topic)
            if md is not None and md.error is None and md.partitions:
                partitions = sorted(md.partitions)
                break
            if time.monotonic() - start > idle_s and (until is None or until(out)):
                return out  # no such topic
            time.sleep(0.5)
        ends = {p: _watermarks(c, TopicPartition(topic, p), deadline) for p in partitions}
        behind = {p for p, (lo, hi) in ends.items() if hi > lo}  # partitions not yet read to their end
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = c.consume(1000, 0.5)
            got = [m for m in batch if m.error() is None]
            if behind:
                behind -= {tp.partition for tp in c.position([TopicPartition(topic, p) for p in behind])
                           if tp.offset >= ends[tp.partition][1]}
                out.extend(got)
                last = time.monotonic()
            elif got:
                out.extend(got)
                last = time.monotonic()
            elif time.monotonic() - last > idle_s and (until is None or until(out)):
                break
    finally:
        c.close()
    return out


def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Messages not yet committed by `group`, per "topic[partition]" (topics not created yet are left out)."""
    from confluent_kafka import Consumer, TopicPartition

    # Not subscribed, so it never joins the group: it only reads the group's committed offsets.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=30)
        lag = {}
        tps = [TopicPartition(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions]
        for tp in c.committed(tps, timeout=30) if tps else []:
            lo, hi = c.get_watermark_offsets(tp, timeout=30)
            lag[f"{tp.topic}[{tp.partition}]"] = max(hi - (tp.offset if tp.offset >= 0 else lo), 0)
        return lag
    finally:
        c.close()


def pipeline_topics(prefix: str, app_id: str, *, sink: bool = False) -> list[str]:
    """Every topic a worker consumes, in pipeline order (with the MongoDB sink's inputs last)."""
    internal = f"{prefix}{app_id}"
    return [f"{prefix}logs.raw", f"{prefix}flows.raw", f"{internal}-entity-hops", f"{internal}-to-score",
            f"{internal}-healing"] + ([f"{prefix}threats.enriched", f"{prefix}actions.healing"] if sink else [])


def pipeline_lag(bootstrap: str, prefix: str, app_id: str, *, sink: bool = False) -> dict[str, int]:
    """`group_lag` of every topic a worker consumes, each under the group that commits it.

    The raw topics are read by the ingest stage's own consumer (group `<app id>-ingest`), the
    rest by Faust's (group `<app id>`).
    """
    from streams.agents.raw_reader import ingest_group

    topics = pipeline_topics(prefix, app_id, sink=sink)
    raw = [t for t in topics if t.endswith(".raw")]
    return {**group_lag(bootstrap, ingest_group(app_id), raw),
            **group_lag(bootstrap, app_id, [t for t in topics if t not in raw])}


def wait_pipeline_idle(bootstrap: str, prefix: str, app_id: str, timeout_s: float,
                       on_fail: Callable[[], str] = lambda: "", *, sink: bool = False) -> None:
    """Wait until the workers have committed every message of every stage.

    A stage flushes its outputs before it commits its input, so once each stage, checked in
    pipeline order, has nothing uncommitted, every output of the input is on its topic.
    """
    last: dict[str, int] = {}

    def idle() -> bool:
        nonlocal last
        last = pipeline_lag(bootstrap, prefix, app_id, sink=sink)
        return not any(last.values())

    def report() -> str:
        return f"uncommitted: { {k: v for k, v in last.items() if v} }\n{on_fail()}"

    wait_for(idle, timeout_s, "every pipeline stage to commit all its input", report)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, on_fail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}\n{on_fail()}")
