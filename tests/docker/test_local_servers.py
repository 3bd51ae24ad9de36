"""The Docker-free server scripts: idempotent up/down, status, stale pid files. Spare ports, own dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LOCAL
from tests.streams.conftest import free_port

pytestmark = pytest.mark.integration


def _run(script: str, action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(LOCAL / script), action], env={**os.environ, "PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("script", "env_for"),
    [
        ("mongo.sh", lambda tmp, port: {"MONGO_PORT": str(port), "MONGO_HOME_DIR": str(tmp / "mongo")}),
        ("kafka.sh", lambda tmp, port: {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(free_port()), "KAFKA_SASL_PORT": str(free_port()),
                                        "KAFKA_HOME_DIR": str(tmp / "kafka"), "KAFKA_HEAP": "512m"}),
    ],
)
def test_up_twice_down_twice_and_stale_pid(script: str, env_for, tmp_path: Path) -> None:
    env = env_for(tmp_path, free_port())
    home = Path(next(v for k, v in env.items() if k.endswith("HOME_DIR")))
    try:
        first = _run(script, "up", env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "ready on" in first.stdout
        pid = (home / ("ferretdb.pid" if script == "mongo.sh" else "kafka.pid")).read_text().strip()
        second = _run(script, "up", env)
        assert second.returncode == 0 and f"already running (pid {pid})" in second.stdout
        assert _run(script, "status", env).returncode == 0
        assert "stopped" in _run(script, "down", env).stdout
        again = _run(script, "down", env)
        assert again.returncode == 0 and "not running" in again.stdout
        assert _run(script, "status", env).returncode == 1
        # A pid file left by a crash, naming a process that is gone, is cleared and replaced.
        (home / ("ferretdb.pid" if script == "mongo.sh" else "kafka.pid")).write_text("999999\n")
        restarted = _run(script, "up", env)
        assert restarted.returncode == 0 and "ready on" in restarted.stdout, restarted.stdout + restarted.stderr
    finally:
        _run(script, "clean", env)
    assert _run(script, "status", env).returncode == 1
