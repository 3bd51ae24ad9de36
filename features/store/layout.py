"""Which windows each role keeps, as numbers the compiled kernel indexes by (feature schema 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ROLE_IDS", "SERIES", "Series", "series_table"]

_S = 1000
_MIN = 60 * _S

# Role ids: the kernel's entity table stores these, in `features.entities.ROLES` order.
ROLE_IDS = {"src": 0, "dst": 1, "user": 2, "service": 3}


@dataclass(frozen=True, slots=True)
class Series:
    """One window of one role: bucket width, how long a bucket is kept (before lateness), and its kind."""

    name: str
    width_ms: int
    horizon_ms: int  # the longest span any feature reads; lateness is added when pruning
    distinct: bool = False  # a last-seen histogram of distinct values instead of a sum


# The series ids are positions in this tuple; the kernel hard-codes them (kernel.py), so only
# append. A role updates only the series its features read: a source never keeps packets.
SERIES: tuple[Series, ...] = (
    Series("src_events", 10 * _S, _MIN),
    Series("src_failures", 10 * _S, 10 * _MIN),
    Series("src_http_4xx", 10 * _S, 5 * _MIN),
    Series("src_attack_urls", 10 * _S, 10 * _MIN),
    Series("src_flows", _S, _MIN),
    Series("src_users", 10 * _S, 10 * _MIN, distinct=True),
    Series("src_paths", _S, _MIN, distinct=True),
    Series("src_dst_ports", _S, _MIN, distinct=True),
    Series("src_dst_ips", _S, _MIN, distinct=True),
    Series("dst_srcs", _S, _MIN, distinct=True),
    Series("dst_flows", _S, 10 * _S),
    Series("dst_packets", _S, 10 * _S),
    Series("dst_bytes", _S, 10 * _S),
    Series("user_failures", 10 * _S, 10 * _MIN),
    Series("user_srcs", 10 * _S, 10 * _MIN, distinct=True),
    Series("service_events", 10 * _S, 5 * _MIN),
    Series("service_errors", 10 * _S, 5 * _MIN),
    Series("service_rt_n", 10 * _S, 5 * _MIN),
    Series("service_rt_sum", 10 * _S, 5 * _MIN),
    Series("service_rt_sumsq", 10 * _S, 5 * _MIN),
    Series("src_sensitive", 10 * _S, 5 * _MIN),
    Series("src_pages", 10 * _S, 5 * _MIN, distinct=True),
)


def series_table(lateness_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket width, buckets kept behind an entity's newest) per series id, for the kernel."""
    width = np.array([s.width_ms for s in SERIES], dtype=np.int64)
    keep = np.array([(s.horizon_ms + lateness_ms) // s.width_ms + 1 for s in SERIES], dtype=np.int64)
    return width, keep
