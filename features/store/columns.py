"""An event's kernel inputs, once per event, and batches of them as the kernel's columns.

`kernel_inputs` is what an event contributes to every entity's windows. The stream computes
it once, at ingest, and the hops carry it (`streams.internal.EntityHop.k`), so no entity hop
rebuilds the event; training builds the same rows from the same function (`batch_from_events`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..entities import ROLES, entity_keys, is_failure, suspicious_url
from ..events import Event, EventKind
from ..web import is_sensitive_path, is_static_path
from ..windows import value_key
from .store import Batch

__all__ = ["INPUTS", "batch_from_events", "batch_from_inputs", "check_inputs", "kernel_inputs"]

_ERROR_LEVELS = ("error", "critical", "fatal")
# The order of an input row. The last six are 63-bit value hashes (0: none). Feature schema 3
# appended "sens" and "h_page"; a row of schema 2's 13 inputs (a hop sent before an upgrade)
# is read as one without them.
INPUTS = ("fail", "status", "err", "atk", "rt", "flow", "packets", "bytes",
          "h_user", "h_dst_port", "h_dst_ip", "h_path", "h_src", "sens", "h_page")
_N = len(INPUTS)
_N_V2 = 13
_HASH_MAX = 0x7FFF_FFFF_FFFF_FFFF


def _h(value: str) -> int:
    # value_key is 64 bits unsigned; the kernel keeps 63 and reserves 0 for "none".
    return (value_key(value) & _HASH_MAX) or 1


def kernel_inputs(e: Event) -> list[int | float | None]:
    """What the event adds to its entities' windows, in `INPUTS` order (rt None when absent)."""
    flow = e.kind is EventKind.FLOW
    src = e.src_ip or e.src_host
    hp = _h(e.path) if e.path else 0
    return [
        int(is_failure(e)),
        e.status if e.status is not None else -1,
        int(e.level in _ERROR_LEVELS),
        int(bool(e.path) and any(suspicious_url(e.path))),
        e.response_time_ms,
        int(flow),
        float((e.fwd_packets or 0) + (e.bwd_packets or 0)) if flow else 0.0,
        float((e.fwd_bytes or 0) + (e.bwd_bytes or 0)) if flow else 0.0,
        _h(e.user) if e.user else 0,
        _h(str(e.dst_port)) if e.dst_port is not None else 0,
        _h(e.dst_ip) if e.dst_ip else 0,
        hp,
        _h(src) if src else 0,
        int(is_sensitive_path(e.path)),
        hp if hp and not is_static_path(e.path) else 0,
    ]


def check_inputs(row: object) -> list[int | float | None]:
    """An input row read off a topic, checked; raises ValueError on anything `kernel_inputs` cannot have made."""
    if type(row) is not list or len(row) not in (_N, _N_V2):
        raise ValueError(f"kernel inputs must be a list of {_N}")
    if len(row) == _N_V2:
        row = row + [0, 0]
    if type(row[13]) is not int or row[13] not in (0, 1):
        raise ValueError("kernel inputs: the sensitive-path flag must be 0 or 1")
    ints = row[:4] + row[5:6] + row[8:]
    if not all(type(v) is int for v in ints):  # bool is not int here, by `type`
        raise ValueError("kernel inputs: counts, flags and value hashes must be integers")
    if min(ints) < 0 and (row[1] < -1 or min(ints[:1] + ints[2:]) < 0) or max(ints) > _HASH_MAX:
        raise ValueError("kernel inputs out of range")
    rt = row[4]
    for v in (0.0 if rt is None else rt, row[6], row[7]):  # rt may be None: no response time
        if type(v) not in (int, float) or not math.isfinite(v):
            raise ValueError("kernel inputs: response time, packets and bytes must be finite numbers")
    return row


def batch_from_inputs(ts: Sequence[int], rows: Sequence[Sequence[int | float | None]],
                      keys: list[list[str | None]]) -> Batch:
    """The kernel's columns from event times, input rows (`kernel_inputs`) and entity keys per role."""
    n = len(rows)
    small = np.array([r[:4] for r in rows], dtype=np.int64).reshape(n, 4)
    rt = np.array([r[4] for r in rows], dtype=np.float64)  # None becomes NaN
    sizes = np.array([r[5:8] for r in rows], dtype=np.float64).reshape(n, 3)
    flags = np.array([r[13] for r in rows], dtype=np.int8)
    values = np.array([[*r[8:13], r[14]] for r in rows], dtype=np.int64).reshape(n, 6).T.copy()
    return Batch(ts=np.array(ts, dtype=np.int64), keys=keys, fail=small[:, 0].astype(np.int8),
                 status=small[:, 1].astype(np.int32), err=small[:, 2].astype(np.int8),
                 atk=small[:, 3].astype(np.int8), sens=flags, rt=rt, flow=sizes[:, 0].astype(np.int8),
                 packets=sizes[:, 1].copy(), bytes=sizes[:, 2].copy(), values=values)


def batch_from_events(events: Sequence[Event], keys: list[list[str | None]] | None = None) -> Batch:
    """The kernel's columns for these events, in their order; entity keys from the events unless given."""
    if keys is None:
        keys = [[None] * len(events) for _ in ROLES]
        index = {r: i for i, r in enumerate(ROLES)}
        for j, e in enumerate(events):
            for role, key in entity_keys(e).items():
                keys[index[role]][j] = key
    return batch_from_inputs([e.ts_ms for e in events], [kernel_inputs(e) for e in events], keys)
