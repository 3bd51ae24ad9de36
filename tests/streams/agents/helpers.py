"""Inputs and walks shared by the stage tests: raw lines and flows, ingest, a hop's way through its entities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from features.parsing import TimeBounds
from features.windows import WindowConfig
from streams.agents.ingest import Ingested, ingest
from streams.agents.windows import PartitionWindows, apply_hops, prepare_hop
from streams.internal import Hop, decode, encode
from streams.wire import DeadLetter

NOW = datetime(2026, 1, 5, 9, 5, tzinfo=UTC)
BOUNDS = TimeBounds()
CFG = WindowConfig()


def sshd_failure(second: int, src: str = "203.0.113.7", user: str = "root", pid: int = 100) -> bytes:
    """One sshd failed-password syslog line at 09:00:00 + `second` on 5 January (the year comes from NOW)."""
    minute, sec = divmod(second, 60)
    return (f"Jan  5 09:{minute:02d}:{sec:02d} bastion sshd[{pid}]: "
            f"Failed password for {user} from {src} port {4000 + second % 60000} ssh2").encode()


def flow(**overrides: Any) -> bytes:
    """One minimal-schema JSON flow."""
    return orjson.dumps({"ts": "2026-01-05T09:00:00Z", "src_ip": "198.51.100.4", "dst_ip": "10.0.0.5",
                         "dst_port": 443, "protocol": "tcp", "fwd_packets": 3, "fwd_bytes": 200, **overrides})


def ingest_at(raw: bytes | None, *, kind: str = "logs", topic: str | None = None, partition: int = 0,
              offset: int = 0, now: datetime = NOW) -> Ingested | DeadLetter:
    return ingest(raw, input_kind=kind, topic=topic or kind, partition=partition, offset=offset, now=now,
                  bounds=BOUNDS)


def ingested(raw: bytes, **kw: Any) -> Ingested:
    out = ingest_at(raw, **kw)
    assert isinstance(out, Ingested), out
    return out


def apply_hop(msg: dict[str, Any], windows: PartitionWindows | None, *, cfg: WindowConfig = CFG,
              at: tuple[str, int] | None = None) -> tuple[PartitionWindows, Hop, str]:
    """One hop applied alone to `windows` (new ones if None): the windows, the next hop, the outcome."""
    windows = windows if windows is not None else PartitionWindows.empty(cfg)
    [(nxt, outcome)] = apply_hops(windows, [(prepare_hop(msg), at)])
    return windows, nxt, outcome


def walk(hop: Hop, states: dict[bytes, PartitionWindows], cfg: WindowConfig = CFG) -> tuple[Hop, list[str]]:
    """Take a message through all its entities (windows per entity key), over the wire encoding as the agents do."""
    outcomes = []
    while hop.key is not None:
        key = hop.key
        msg = decode(encode(hop.message))
        assert msg["route"][msg["i"]][1].encode() == key  # a hop is keyed by the entity it visits
        states[key], hop, outcome = apply_hop(msg, states.get(key), cfg=cfg)
        outcomes.append(outcome)
    return hop, outcomes
