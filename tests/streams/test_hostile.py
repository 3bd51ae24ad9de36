"""Hostile input through a real worker: a flooding client cannot stall detection for everyone else."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.wire import DeadLetter, HealingAction
from tests.streams.conftest import drain, metric_sum, produce_mixed, unique_prefix, wait_pipeline_idle

pytestmark = pytest.mark.integration

FLOODER = "203.0.113.66"
VICTIM = "10.9.9.9"
BRUTE_FORCERS = [f"198.51.100.{n}" for n in (11, 12, 13)]
INJECTOR = "198.51.100.14"


def _clf(t: datetime) -> str:
    return t.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _syslog(t: datetime) -> str:
    return t.strftime("%b %e %H:%M:%S")


def test_a_flood_of_huge_distinct_paths_does_not_blind_detection(kafka_bootstrap: str, start_worker) -> None:
    """3,000 requests with distinct 2 KB paths from one client in a minute, then ordinary brute force from others.

    Before windows kept hashes, the flooder's state packed to 4.4 MB, the producer refused the
    state write on every round, and none of the brute-forcers after it were blocked.
    """
    prefix, app_id = unique_prefix(), unique_prefix().rstrip(".")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    logs = f"{prefix}logs.raw"
    items: list[tuple[str, bytes | None, bytes]] = []
    for i in range(3000):
        t = start + timedelta(milliseconds=20 * i)
        path = f"/{i:05d}/" + "a" * 2040
        items.append((logs, None, f'{FLOODER} - - [{_clf(t)}] "GET {path} HTTP/1.1" 404 153 "-" "flood/1"'.encode()))
    # A megabyte of control characters on one line: cut at parsing, not a 6 MB hop.
    items.append((logs, None, f"{_syslog(start)} web-1 app[7]: ".encode() + b"\x01" * 1_000_000))
    # A response time that would overflow a z-score: refused at parsing.
    items.append((logs, None, b'{"ts": "%s", "service": "api", "level": "info", "response_time_ms": 1e200}'
                  % start.isoformat().encode()))
    t0 = start + timedelta(seconds=70)
    for n in range(40):
        t = t0 + timedelta(seconds=2 * n)
        for ip in BRUTE_FORCERS:
            msg = f"Failed password for root from {ip} port {40000 + n} ssh2"
            items.append((logs, None, f"{_syslog(t)} bastion sshd[{900 + n}]: {msg}".encode()))
        # The log-injection line of the hostile corpus: it must blame the injector, never the victim.
        msg = f"Failed password for invalid user admin from {VICTIM} port 22 ssh2 from {INJECTOR} port {5000 + n} ssh2"
        items.append((logs, None, f"{_syslog(t)} bastion sshd[{950 + n}]: {msg}".encode()))

    worker = start_worker(app_id, prefix)
    produce_mixed(kafka_bootstrap, items)
    wait_pipeline_idle(kafka_bootstrap, prefix, app_id, 600, worker.log_tail)

    m = worker.metrics()
    scored = metric_sum(m, "streamguard_events_total", outcome="scored")
    dead = metric_sum(m, "streamguard_events_total", outcome="deadlettered")
    assert metric_sum(m, "streamguard_events_in_total") == len(items)
    assert scored + dead == len(items), (scored, dead)
    letters = [DeadLetter.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}ops.deadletter")]
    assert Counter(d.reason for d in letters) == Counter({"bad_value": 1}), [d.error for d in letters]
    assert metric_sum(m, "streamguard_records_too_large_total") == 0
    actions = [HealingAction.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}actions.healing")]
    blocked = {a.target for a in actions if a.action == "block_ip"}
    assert set(BRUTE_FORCERS) | {INJECTOR} <= blocked, sorted(blocked)
    assert VICTIM not in {a.target for a in actions}

    # The window snapshots, as the changelog holds them (each hop partition's every entity, the
    # flooder's source among them): bounded whatever it sent, and in records the broker takes.
    records = [r for r in drain(kafka_bootstrap, f"{app_id}-window-snapshots-changelog") if r.value()]
    manifests = [orjson.loads(r.value()) for r in records if re.fullmatch(rb"windows:\d+~\d+", r.key())]
    assert manifests, "no window snapshot was ever written"
    sizes = [m["bytes"] for m in manifests]
    print(f"\nwindow snapshots: largest {max(sizes):,} bytes over {len(sizes)} writes, "
          f"largest record {max(len(r.value()) for r in records):,} bytes")
    assert max(sizes) < 600_000
