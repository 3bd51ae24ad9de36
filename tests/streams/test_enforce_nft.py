"""`streamguard enforce` against a real broker: in a network namespace it makes, with real nftables drops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.wire import AppliedAction, DeadLetter
from tests.conftest import ROOT
from tests.streams.conftest import BIN, drain, produce, unique_prefix, wait_for
from tests.streams.test_enforce import action

pytestmark = pytest.mark.integration

LISTENER, CLIENT = "10.99.0.1", "10.99.0.2"
PORT = 8080
_SERVE = ("import socket\ns = socket.create_server(('{ip}', {port}))\n"
          "while True:\n    c, _ = s.accept()\n    c.close()\n")
_CONNECT = ("import socket, sys\ns = socket.socket()\ns.settimeout(2)\ns.bind(('{src}', 0))\n"
            "try:\n    s.connect(('{ip}', {port}))\nexcept OSError:\n    sys.exit(1)\n")


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with two loopback addresses and a TCP listener on one; skipped where none can be made."""
    name = f"sg{uuid.uuid4().hex[:8]}"
    if shutil.which("nft") is None or _run("ip", "netns", "add", name).returncode != 0:
        pytest.skip("no network namespace or no nft here: the --print test covers the commands")
    server = None
    try:
        for addr in (LISTENER, CLIENT):
            assert _run("ip", "-n", name, "addr", "add", f"{addr}/32", "dev", "lo").returncode == 0
        assert _run("ip", "-n", name, "link", "set", "lo", "up").returncode == 0
        server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c",
                                   _SERVE.format(ip=LISTENER, port=PORT)])
        yield name
    finally:
        if server is not None:
            server.kill()
            server.wait()
        _run("ip", "netns", "del", name)


def _connects(ns: str) -> bool:
    """Can the client address open a TCP connection to the listener inside the namespace (2 s timeout)?"""
    done = _run("ip", "netns", "exec", ns, sys.executable, "-c", _CONNECT.format(src=CLIENT, ip=LISTENER, port=PORT))
    return done.returncode == 0


def _enforce(bootstrap: str, prefix: str, app_id: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": bootstrap, "STREAMGUARD_TOPIC_PREFIX": prefix,
           "STREAMGUARD_APP_ID": app_id}
    return subprocess.run([str(BIN), "enforce", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _acks(bootstrap: str, prefix: str, n: int) -> list[AppliedAction]:
    msgs = drain(bootstrap, f"{prefix}actions.applied", until=lambda got: len(got) >= n)
    return [AppliedAction.model_validate_json(m.value()) for m in msgs]


def _publish(bootstrap: str, prefix: str, actions: list) -> None:
    produce(bootstrap, f"{prefix}actions.healing", [(a.target.encode(), a.model_dump_json().encode()) for a in actions])


def test_a_blocked_address_is_dropped_in_the_namespace_until_it_is_unblocked(kafka_bootstrap: str, netns: str) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    now = int(time.time() * 1000)
    shift = {"issued_at_ms": now}
    block = action(target=CLIENT, action_id="b1", expires_at_ms=now + 600_000, **shift)
    _publish(kafka_bootstrap, prefix, [
        block,
        block,  # redelivered: applied once
        action(target="10.99.0.3", action_id="d1", dry_run=True, expires_at_ms=now + 600_000, **shift),
        action("alert", target=CLIENT, action_id="al1", **shift),
        action(target="10.99.0.4", action_id="e1", expires_at_ms=now - 1_000, **shift),
        action(target=f"{CLIENT} }} ; flush ruleset", action_id="h1", **shift),
    ])
    wait_for(lambda: _connects(netns), 60, "the listener in the namespace to accept connections")
    nft = f"ip netns exec {netns} nft"
    done = _enforce(kafka_bootstrap, prefix, app_id, "--nft", nft, "--table", "sgtest", "--max", "5")
    assert done.returncode == 0, done.stderr
    acks = _acks(kafka_bootstrap, prefix, 5)
    assert Counter(a.outcome for a in acks) == Counter(applied=1, dry_run=1, ignored=1, expired=1, failed=1)
    applied = next(a for a in acks if a.outcome == "applied")
    assert applied.action_id == "b1" and len(applied.commands) == 1
    assert applied.commands[0].startswith(f"{nft} add element inet sgtest blocked_v4 '{{ {CLIENT} timeout 5")
    listed = _run("ip", "netns", "exec", netns, "nft", "list", "set", "inet", "sgtest", "blocked_v4").stdout
    assert CLIENT in listed and "expires" in listed and "10.99.0.3" not in listed and "10.99.0.4" not in listed
    assert not _connects(netns), "the blocked address still connects"

    # The unblock, read by a new run of the same group: it resumes after what was committed.
    _publish(kafka_bootstrap, prefix, [action("unblock_ip", target=CLIENT, action_id="u1", expires_at_ms=None,
                                              ttl_s=0, **shift)])
    done = _enforce(kafka_bootstrap, prefix, app_id, "--nft", nft, "--table", "sgtest", "--max", "1")
    assert done.returncode == 0, done.stderr
    acks = {a.action_id: a for a in _acks(kafka_bootstrap, prefix, 6)}  # keyed by target: across partitions
    assert len(acks) == 6 and acks["u1"].outcome == "applied"
    assert _connects(netns)


def test_print_mode_writes_the_commands_and_runs_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    produce(kafka_bootstrap, f"{prefix}actions.healing", [(b"junk", b'{"action": "block_ip", "target": "x"}')])
    _publish(kafka_bootstrap, prefix, [
        action(target="198.51.100.20", action_id="p1", expires_at_ms=None, ttl_s=300),
        action("unblock_ip", target="198.51.100.20", action_id="p2", expires_at_ms=None, ttl_s=0),
    ])
    done = _enforce(kafka_bootstrap, prefix, app_id, "--print", "--nft", "sudo nft", "--max", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "sudo nft -f - <<'EOF'" and "flush chain inet streamguard input" in out
    assert out[-2:] == ["sudo nft add element inet streamguard blocked_v4 '{ 198.51.100.20 timeout 300s }'",
                        "sudo nft delete element inet streamguard blocked_v4 '{ 198.51.100.20 }'"]
    acks = _acks(kafka_bootstrap, prefix, 2)
    assert sorted((a.action_id, a.outcome) for a in acks) == [("p1", "printed"), ("p2", "printed")]
    letters = [DeadLetter.model_validate_json(m.value()) for m in drain(kafka_bootstrap, f"{prefix}ops.deadletter")]
    assert [(d.reason, d.source_topic) for d in letters] == [("wrong_type", f"{prefix}actions.healing")]
