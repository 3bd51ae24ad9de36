"""The worker's web server: where it listens, and the debug page only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.streams.conftest import unique_prefix

pytestmark = pytest.mark.integration


def _listening_on(port: int) -> set[str]:
    """Local addresses of the IPv4 sockets listening on `port` (from /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
            out.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return out


def test_the_web_server_listens_on_loopback_and_hides_the_debug_page_by_default(start_worker) -> None:
    prefix = unique_prefix()
    w = start_worker(prefix.rstrip("."), prefix)
    assert w.get("/health")[0] == 200 and w.get("/metrics")[0] == 200
    assert w.get("/debug/tasks")[0] == 404
    status, body = w.get("/api/threats")  # no MongoDB configured: nothing stored to query, and it says so
    assert status == 501 and b"STREAMGUARD_MONGO_URI" in body
    assert _listening_on(w.port) == {"127.0.0.1"}


def test_the_debug_page_and_another_address_when_configured(start_worker) -> None:
    prefix = unique_prefix()
    w = start_worker(prefix.rstrip("."), prefix, debug_pages=True, metrics_host="0.0.0.0")
    status, body = w.get("/debug/tasks")
    assert status == 200 and b"task " in body
    assert _listening_on(w.port) == {"0.0.0.0"}
