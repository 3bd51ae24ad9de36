"""Session infrastructure (a real Kafka broker, a real MongoDB-protocol server) and factory fixtures.

Where the servers come from, first match wins:
1. `STREAMGUARD_TEST_KAFKA` / `STREAMGUARD_TEST_MONGO` (an existing broker / URI);
2. testcontainers, when a Docker engine answers (one container per test process);
3. the Docker-free local servers of `docker/local/` (Kafka from the broker jars, FerretDB) on
   127.0.0.1, port `KAFKA_PORT` (9092) / `MONGO_PORT` (27017) as for the scripts. A server
   already answering there is reused and left running; otherwise the first test process
   that needs it starts it, once for the whole run (pytest-xdist workers share it), and the
   run stops it when every process is done.

Work shared by the processes of one run (the servers, the trained model of
`tests/streams/conftest.py`) goes through `once_per_run`: a file lock in the run's
directory, which is the xdist controller's basetemp.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Fuzzing: the same 300 examples per test on every CI run (a failure reproduces); a long,
# random run with HYPOTHESIS_PROFILE=fuzz (`make reliability`).
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# How `make test` spreads the tests over pytest-xdist workers.
pytest_plugins = ["tests.scheduling"]

# The test deployment's one signing secret: what trains (and so signs model records), the
# workers, the CLI and the retrain worker all read it from the environment they inherit.
SIGNING_SECRET = "test-deployment-signing-secret-0123456789"
os.environ["STREAMGUARD_SIGNING_SECRET"] = SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "docker" / "local"
_TEST_VAR = ROOT / "var" / "test"


def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _local(script: str, action: str, env: dict[str, str], *, exit_on_failure: bool = True) -> None:
    full_env = {**os.environ, "PYTHON": sys.executable, **env}
    proc = subprocess.run(["bash", str(LOCAL / script), action], env=full_env, capture_output=True, text=True)
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0 and exit_on_failure:
        pytest.exit(f"{script} {action} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}", returncode=3)


def run_dir(config: pytest.Config) -> Path:
    """The directory every process of this test run shares: the basetemp of the xdist controller
    (each worker's basetemp is a subdirectory of it), or the session's basetemp without xdist."""
    base = config._tmp_path_factory.getbasetemp()  # what the tmp_path_factory fixture hands out
    return base.parent if hasattr(config, "workerinput") else base


def once_per_run(config: pytest.Config, name: str, make: Callable[[Path], None]) -> Path:
    """Run `make(folder)` once per test run, in whichever process asks first; return the folder.

    The other xdist workers wait on the lock and then find the work done. If `make` fails, the
    next process to ask tries again (and reports its own failure).
    """
    from filelock import FileLock

    shared = run_dir(config)
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@dataclass(frozen=True)
class _LocalServer:
    """A server of docker/local/ as the session starts it: on 127.0.0.1, data under var/test."""

    name: str
    script: str
    port: int
    env: dict[str, str]


def _local_servers() -> dict[str, _LocalServer]:
    kafka_port = int(os.environ.get("KAFKA_PORT", "9092"))
    mongo_port = int(os.environ.get("MONGO_PORT", "27017"))
    return {
        "kafka": _LocalServer("kafka", "kafka.sh", kafka_port,
                              {"KAFKA_PORT": str(kafka_port), "KAFKA_HOME_DIR": str(_TEST_VAR / "kafka")}),
        "mongo": _LocalServer("mongo", "mongo.sh", mongo_port,
                              {"MONGO_PORT": str(mongo_port), "MONGO_HOME_DIR": str(_TEST_VAR / "mongo")}),
    }


def _start_local(config: pytest.Config, server: _LocalServer) -> None:
    """Start `server` unless it answers already; once per run, whichever process asks first.

    A marker in the run's folder says this run started it, so that only then it is stopped
    (by `pytest_sessionfinish`, once every process of the run is done).
    """

    def start(marker_dir: Path) -> None:
        if not _port_open(server.port):
            _local(server.script, "up", server.env)
            (marker_dir / "started").touch()

    once_per_run(config, f"server-{server.name}", start)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the local servers this run started: in the xdist controller (or the only process),
    which finishes after every worker, never in a worker."""
    if hasattr(session.config, "workerinput"):
        return
    shared = run_dir(session.config)
    for server in _local_servers().values():
        if (shared / f"server-{server.name}" / "started").exists():
            _local(server.script, "clean", server.env, exit_on_failure=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for this test session."""
    if given := os.environ.get("STREAMGUARD_TEST_KAFKA"):
        yield given
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    server = _local_servers()["kafka"]
    _start_local(pytestconfig, server)
    yield f"127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def kafka_sasl_bootstrap(kafka_bootstrap: str) -> str:
    """The same broker's SASL_PLAINTEXT (SCRAM-SHA-512) listener; users are created through `kafka_bootstrap`."""
    if given := os.environ.get("STREAMGUARD_TEST_KAFKA_SASL"):
        return given
    if os.environ.get("STREAMGUARD_TEST_KAFKA") or not kafka_bootstrap.startswith("127.0.0.1:"):
        pytest.skip("a broker not started by docker/local/kafka.sh: set STREAMGUARD_TEST_KAFKA_SASL to its "
                    "SASL_PLAINTEXT SCRAM-SHA-512 listener")
    port = int(os.environ.get("KAFKA_SASL_PORT", "9094"))
    with socket.socket() as s:
        s.settimeout(5)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            pytest.fail(f"the local broker has no SASL listener on 127.0.0.1:{port}: it was started by an older "
                        "docker/local/kafka.sh; restart it (make kafka-down kafka-up)")
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def mongo_uri(pytestconfig: pytest.Config) -> Iterator[str]:
    """URI of a real MongoDB-protocol server for this test session."""
    if given := os.environ.get("STREAMGUARD_TEST_MONGO"):
        yield given
        return
    if _docker_engine_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:7") as container:
            yield container.get_connection_url()
        return
    server = _local_servers()["mongo"]
    _start_local(pytestconfig, server)
    yield f"mongodb://127.0.0.1:{server.port}/"


def unique(prefix: str) -> str:
    """A name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_admin(kafka_bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(kafka_admin) -> Iterator[Callable[..., str]]:
    """Factory: create a uuid-named topic (deleted after the test) and return its name."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def _make(prefix: str = "test", partitions: int = 4) -> str:
        name = unique(prefix)
        kafka_admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        created.append(name)
        return name

    yield _make
    if created:
        for fut in kafka_admin.delete_topics(created, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception:  # noqa: BLE001 - best-effort clean-up must not mask the test's result
                pass


@pytest.fixture
def make_producer(kafka_bootstrap: str) -> Iterator[Callable[..., object]]:
    """Factory: a confluent-kafka producer on the session broker, flushed at teardown."""
    from confluent_kafka import Producer

    producers: list[Producer] = []

    def _make(**conf: object) -> Producer:
        # Idempotence keeps each partition's order even when a loaded broker forces retries.
        p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True, **conf})
        producers.append(p)
        return p

    yield _make
    for p in producers:
        p.flush(10)


@pytest.fixture
def make_consumer(kafka_bootstrap: str) -> Iterator[Callable[..., object]]:
    """Factory: a confluent-kafka consumer in a uuid group, reading from the earliest offset."""
    from confluent_kafka import Consumer

    consumers: list[Consumer] = []

    def _make(*topics: str, group: str | None = None, **conf: object) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": group or unique("test-group"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **conf,
            }
        )
        if topics:
            c.subscribe(list(topics))
        consumers.append(c)
        return c

    yield _make
    for c in consumers:
        c.close()


@pytest.fixture
def mongo_db(mongo_uri: str):
    """A uuid-named database on the session server, dropped after the test."""
    from pymongo import MongoClient

    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    name = unique("sgtest").replace("-", "_")
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()
