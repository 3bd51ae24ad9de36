"""A real Prometheus, loaded with the shipped rules, scrapes two real workers and alerts on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docker.test_grafana_dashboard import dashboard_queries
from tests.streams.conftest import free_port, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration

RULES = ROOT / "docker" / "prometheus" / "alerts.yml"


class Prometheus:
    """A Prometheus server process on a free loopback port, scraping the given targets every second."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: `make test-tools` installs Debian's prometheus package")
        self.port = free_port()
        config = folder / "prometheus.yml"
        # One-second scrapes and evaluations: the rules' own `for:` durations still apply.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "streamguard-workers", "static_configs": [{"targets": targets}]}],
        }))
        self.log = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
            return json.load(resp)

    def ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited:\n" + self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict:
        """An instant query's response (status, data or error), errors included."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            return json.load(exc)

    def alerts(self) -> list[dict]:
        return self.api("/api/v1/alerts")["data"]["alerts"]

    def targets_up(self) -> int:
        return sum(t["health"] == "up" for t in self.api("/api/v1/targets")["data"]["activeTargets"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], Prometheus]]:
    """Factory: start a Prometheus scraping these targets with the shipped rules; stopped afterwards."""
    started: list[Prometheus] = []

    def _start(targets: list[str]) -> Prometheus:
        server = Prometheus(tmp_path, targets)
        started.append(server)
        wait_for(server.ready, 120, "prometheus to be ready", lambda: server.log.read_text()[-3000:])
        return server

    yield _start
    for server in started:
        server.stop()


def test_bad_input_fires_the_dead_letter_alert_for_a_worker_that_received_it(
        kafka_bootstrap: str, start_worker, prometheus) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    workers = [start_worker(app_id, prefix, ready=False) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    instances = {f"127.0.0.1:{w.port}" for w in workers}
    server = prometheus(sorted(instances))
    wait_for(lambda: server.targets_up() == 2, 120, "prometheus to scrape both workers")

    def firing(name: str) -> list[dict]:
        return [a for a in server.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]

    # Healthy so far: nothing fires, nothing is pending.
    time.sleep(5)
    assert server.alerts() == [], server.alerts()

    # A log source gone wrong: 400 lines no parser knows, on every partition.
    produce(kafka_bootstrap, f"{prefix}logs.raw", [(f"k{i}".encode(), b"\x7fnot a log line %d" % i)
                                                     for i in range(400)])
    on_fail = lambda: json.dumps(server.alerts(), indent=1) + "\n" + "\n".join(w.log_tail(20) for w in workers)  # noqa: E731
    wait_for(lambda: bool(firing("StreamguardDeadLettersSpiking")), 300, "the dead-letter alert to fire", on_fail)

    fired = firing("StreamguardDeadLettersSpiking")
    assert {a["labels"]["instance"] for a in fired} <= instances
    assert all(a["labels"]["severity"] == "warning" and "dead-letters" in a["annotations"]["summary"] for a in fired)
    # Each firing worker did dead-letter input; and no other alert came with it.
    for alert in fired:
        worker = next(w for w in workers if f"127.0.0.1:{w.port}" == alert["labels"]["instance"])
        assert sum(v for (n, _), v in worker.metrics().items() if n == "streamguard_deadletters_total") > 0
    assert {a["labels"]["alertname"] for a in server.alerts()} == {"StreamguardDeadLettersSpiking"}

    # The dashboard's queries, against the same Prometheus and workers: each is valid PromQL,
    # and those about input, dead letters, the model and alerts already show data.
    answers = {title + ": " + expr: server.query(expr) for title, expr in dashboard_queries()}
    failed = {q: a.get("error") for q, a in answers.items() if a["status"] != "success"}
    assert not failed, failed
    with_data = {q for q, a in answers.items() if a["data"]["result"]}
    for expected in ("rate(streamguard_events_in_total", "rate(streamguard_deadletters_total",
                     "(streamguard_model_info)", "ALERTS{"):
        assert any(expected in q for q in with_data), (expected, sorted(with_data))
