"""Event objects to a kernel `Batch`: the offline path (training, tests); v2's parsers will build batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..entities import ROLES, entity_keys, is_failure, suspicious_url
from ..events import Event, EventKind
from ..windows import value_key
from .store import Batch

__all__ = ["batch_from_events"]

_ERROR_LEVELS = ("error", "critical", "fatal")


def batch_from_events(events: Sequence[Event], keys: list[list[str | None]] | None = None) -> Batch:
    """The kernel's columns for these events, in their order; entity keys from the events unless given."""
    n = len(events)
    given = keys is not None
    if keys is None:
        keys = [[None] * n for _ in ROLES]
    ts = np.empty(n, np.int64)
    fail = np.zeros(n, np.int8)
    status = np.full(n, -1, np.int32)
    err = np.zeros(n, np.int8)
    atk = np.zeros(n, np.int8)
    rt = np.full(n, np.nan)
    flow = np.zeros(n, np.int8)
    packets = np.zeros(n)
    nbytes = np.zeros(n)
    values = np.zeros((5, n), np.int64)
    memo: dict[str, int] = {}

    def h(value: str) -> int:
        got = memo.get(value)
        if got is None:
            # value_key is 64 bits unsigned; the kernel keeps 63 and reserves 0 for "none".
            got = memo[value] = (value_key(value) & 0x7FFF_FFFF_FFFF_FFFF) or 1
        return got

    role_index = {r: i for i, r in enumerate(ROLES)}
    for i, e in enumerate(events):
        ts[i] = e.ts_ms
        if not given:
            for role, key in entity_keys(e).items():
                keys[role_index[role]][i] = key
        fail[i] = is_failure(e)
        if e.status is not None:
            status[i] = e.status
        err[i] = e.level in _ERROR_LEVELS
        atk[i] = bool(e.path) and any(suspicious_url(e.path))
        if e.response_time_ms is not None:
            rt[i] = e.response_time_ms
        if e.kind is EventKind.FLOW:
            flow[i] = 1
            packets[i] = (e.fwd_packets or 0) + (e.bwd_packets or 0)
            nbytes[i] = (e.fwd_bytes or 0) + (e.bwd_bytes or 0)
        if e.user:
            values[0, i] = h(e.user)
        if e.dst_port is not None:
            values[1, i] = h(str(e.dst_port))
        if e.dst_ip:
            values[2, i] = h(e.dst_ip)
        if e.path:
            values[3, i] = h(e.path)
        src = e.src_ip or e.src_host
        if src:
            values[4, i] = h(src)
    return Batch(ts=ts, keys=keys, fail=fail, status=status, err=err, atk=atk, rt=rt, flow=flow, packets=packets,
                 bytes=nbytes, values=values)
