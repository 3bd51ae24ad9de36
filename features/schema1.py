"""Feature schema 1: per-entity window objects, the reference the compiled store (schema 2) is tested against.

Training and the stream ran on these until stream core v2 (docs/design/core-v2.md). Nothing in
the pipeline uses them now; `tests/features/store/` compares `features.store.WindowStoreV2` with
them on held-out generator seeds, so the difference between the schemas stays measured.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from typing import Any

import orjson

from .entities import ROLES, entity_keys, is_failure, suspicious_url
from .events import Event, EventKind
from .extract import ROLE_FEATURES, assemble, event_features
from .windows import BucketCounter, DistinctCounter, Moments, WindowConfig

__all__ = ["SCHEMA1_FEATURES", "EntityState", "WindowStoreV1", "role_features"]

_S = 1000
_MIN = 60 * _S
# Schema 3's web-probing source features (`extract.ROLE_FEATURES["src"]`, last three): this
# reference never computed them and reads them as zero; comparisons leave them out (`SCHEMA1_FEATURES`).
_NOT_IN_SCHEMA1 = (0.0, 0.0, 0.0)
SCHEMA1_FEATURES = tuple(f for role in ROLES for f in ROLE_FEATURES[role]
                         if f not in ("src_http_4xx_5m", "src_distinct_pages_5m", "src_sensitive_paths_5m"))


class _Empty:
    """A shared, read-only empty window: reads give nothing, writes are a bug."""

    __slots__ = ()

    def add(self, *args: Any) -> None:
        raise TypeError("the shared empty window is read-only; use EntityState._window")

    def restore(self, data: Any) -> None:
        raise TypeError("the shared empty window is read-only; use EntityState._window")


class _EmptyBuckets(_Empty, BucketCounter):
    __slots__ = ()


class _EmptyDistinct(_Empty, DistinctCounter):
    __slots__ = ()


class _EmptyMoments(_Empty, Moments):
    __slots__ = ()


_EMPTY: dict[str, Any] = {"buckets": _EmptyBuckets(_S, _S), "distinct": _EmptyDistinct(_MIN, 1),
                          "moments": _EmptyMoments(_S, _S)}

# Window name -> (kind, bucket width or distinct window, horizon before lateness) in ms.
_SPECS: dict[str, tuple[str, int, int]] = {
    # 10 s buckets kept for up to 10 min (+ lateness) serve the 1-min and 10-min counts.
    "events": ("buckets", 10 * _S, 10 * _MIN),
    "failures": ("buckets", 10 * _S, 10 * _MIN),
    "http_4xx": ("buckets", 10 * _S, _MIN),
    "errors": ("buckets", 10 * _S, 5 * _MIN),
    "attack_urls": ("buckets", 10 * _S, 10 * _MIN),
    # 1 s buckets: flood rates.
    "flows": ("buckets", _S, 60 * _S),
    "packets": ("buckets", _S, 10 * _S),
    "bytes": ("buckets", _S, 10 * _S),
    "users": ("distinct", 10 * _MIN, 0),
    "dst_ports": ("distinct", _MIN, 0),
    "dst_ips": ("distinct", _MIN, 0),
    "paths": ("distinct", _MIN, 0),
    "srcs": ("distinct", 10 * _MIN, 0),
    "rt": ("moments", 10 * _S, 5 * _MIN),
}


# `EntityState.pack`: format byte, last seen (ms), role index; then the JSON snapshot.
_PACK = struct.Struct(">BqB")
_PACKED_V1 = 1


class EntityState:
    """Rolling windows of one entity. One class serves every role; a role reads what it needs."""

    __slots__ = (
        "role", "cfg", "watermark_ms", "last_seen_ms", "late_events", "applied",
        "events", "failures", "http_4xx", "errors", "attack_urls",
        "flows", "packets", "bytes",
        "users", "dst_ports", "dst_ips", "paths", "srcs", "rt",
    )

    def __init__(self, role: str, cfg: WindowConfig | None = None) -> None:
        self.role = role
        self.cfg = cfg or WindowConfig()
        self.watermark_ms = 0
        self.last_seen_ms = 0
        self.late_events = 0
        # Last input offset applied, per input partition ("topic:partition"), so an input
        # delivered again (at-least-once, after a crash) is not counted twice. Inputs of one
        # partition reach an entity in offset order. The stream sets it; offline use does not.
        self.applied: dict[str, int] = {}
        # Every window starts as a shared, read-only empty one and becomes real on its first
        # value (`_window`): most entities use a few of the fourteen (a flow-only source never
        # fills users, paths or response times), and an empty window costs ~300 bytes.
        for name in self._WINDOWS:
            setattr(self, name, _EMPTY[_SPECS[name][0]])

    def _window(self, name: str) -> Any:
        """The window `name`, made real (writable) if it was the shared empty one."""
        w = getattr(self, name)
        if isinstance(w, _Empty):
            kind, width, horizon = _SPECS[name]
            lateness = self.cfg.allowed_lateness_ms
            if kind == "distinct":
                w = DistinctCounter(width, self.cfg.distinct_cap)
            elif kind == "moments":
                w = Moments(width, horizon + lateness)
            else:
                w = BucketCounter(width, horizon + lateness)
            setattr(self, name, w)
        return w

    def observe(self, event: Event) -> bool:
        """Count the event in this entity's windows; False (and not counted) if it is too late."""
        ts = event.ts_ms
        if ts < self.watermark_ms - self.cfg.allowed_lateness_ms:
            self.late_events += 1
            return False
        if ts > self.watermark_ms:
            self.watermark_ms = ts
        self.last_seen_ms = max(self.last_seen_ms, ts)
        self._window("events").add(ts)
        if is_failure(event):
            self._window("failures").add(ts)
        if event.status is not None:
            if 400 <= event.status < 500:
                self._window("http_4xx").add(ts)
            elif event.status >= 500:
                self._window("errors").add(ts)
        if event.level in ("error", "critical", "fatal"):
            self._window("errors").add(ts)
        if event.path and any(suspicious_url(event.path)):
            self._window("attack_urls").add(ts)
        if event.response_time_ms is not None:
            self._window("rt").add(ts, event.response_time_ms)
        if event.kind is EventKind.FLOW:
            self._window("flows").add(ts)
            self._window("packets").add(ts, float((event.fwd_packets or 0) + (event.bwd_packets or 0)))
            self._window("bytes").add(ts, float((event.fwd_bytes or 0) + (event.bwd_bytes or 0)))
        role = self.role
        if role == "src":
            if event.user:
                self._window("users").add(ts, event.user)
            if event.dst_port is not None:
                self._window("dst_ports").add(ts, str(event.dst_port))
            if event.dst_ip:
                self._window("dst_ips").add(ts, event.dst_ip)
            if event.path:
                self._window("paths").add(ts, event.path)
        elif role in ("dst", "user"):
            src = event.src_ip or event.src_host
            if src:
                self._window("srcs").add(ts, src)
        return True

    def seen_before(self, origin: str, offset: int) -> bool:
        """True if the input at this position (or a later one of its partition) was already applied."""
        return offset <= self.applied.get(origin, -1)

    def mark_applied(self, origin: str, offset: int) -> None:
        # Interned: a million entities then share a handful of partition names.
        self.applied[sys.intern(origin)] = max(offset, self.applied.get(origin, -1))

    def expired(self, now_ms: int) -> bool:
        """True when the entity has been idle (event time) longer than the idle TTL."""
        return self.cfg.idle(self.last_seen_ms, now_ms)

    def prune(self) -> None:
        """Drop buckets and values that have left every window."""
        now = self.watermark_ms
        for w in (self.events, self.failures, self.http_4xx, self.errors, self.attack_urls,
                  self.flows, self.packets, self.bytes, self.users, self.dst_ports, self.dst_ips,
                  self.paths, self.srcs, self.rt):
            w.prune(now)

    _WINDOWS = ("events", "failures", "http_4xx", "errors", "attack_urls", "flows", "packets", "bytes",
                "users", "dst_ports", "dst_ips", "paths", "srcs", "rt")

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-ready data; `restore` rebuilds an equal state."""
        self.prune()
        return {
            "v": 1,
            "role": self.role,
            "watermark_ms": self.watermark_ms,
            "last_seen_ms": self.last_seen_ms,
            "late_events": self.late_events,
            "applied": dict(self.applied),
            "w": {name: getattr(self, name).snapshot() for name in self._WINDOWS},
        }

    def pack(self) -> bytes:
        """Compact bytes for a table to hold between updates (and its changelog): see `unpack`.

        A worker tracks up to millions of entities and touches few at a time; as live objects
        they cost ~2.7 KiB each (dicts and lists per window), packed ~0.4 KiB. The header lets
        idle expiry read role and last-seen time without decoding the windows.
        """
        snap = self.snapshot()
        snap["w"] = {name: w for name, w in snap["w"].items() if w}  # empty windows are implied
        return _PACK.pack(_PACKED_V1, self.last_seen_ms, ROLES.index(self.role)) + orjson.dumps(snap)

    @classmethod
    def unpack(cls, data: bytes, cfg: WindowConfig | None = None) -> EntityState:
        """The state `pack` made; also a plain JSON snapshot (changelogs written before packing)."""
        if data[:1] == b"{":
            return cls.restore(orjson.loads(data), cfg)
        if data[:1] != bytes([_PACKED_V1]) or len(data) <= _PACK.size:
            raise ValueError(f"not a packed entity state (starts {data[:4]!r})")
        return cls.restore(orjson.loads(data[_PACK.size:]), cfg)

    @staticmethod
    def peek(data: bytes) -> tuple[str, int]:
        """(role, last seen ms) of packed state, without decoding its windows."""
        if data[:1] == b"{":
            snap = orjson.loads(data)
            return str(snap["role"]), int(snap["last_seen_ms"])
        if data[:1] != bytes([_PACKED_V1]) or len(data) <= _PACK.size:
            raise ValueError(f"not a packed entity state (starts {data[:4]!r})")
        _, last_seen, role = _PACK.unpack_from(data)
        return ROLES[role], last_seen

    @classmethod
    def restore(cls, data: dict[str, Any], cfg: WindowConfig | None = None) -> EntityState:
        state = cls(data["role"], cfg)
        state.watermark_ms = int(data["watermark_ms"])
        state.last_seen_ms = int(data["last_seen_ms"])
        state.late_events = int(data.get("late_events", 0))
        state.applied = {sys.intern(str(k)): int(v) for k, v in data.get("applied", {}).items()}
        for name, snap in data["w"].items():
            if any(snap):  # an empty window stays the shared empty one
                state._window(name).restore(snap)
        return state


def role_features(role: str, state: EntityState | None, event: Event) -> list[float]:
    """The window features of one role, read after the event was observed; zeros without state."""
    if state is None:
        return [0.0] * len(ROLE_FEATURES[role])
    now = max(event.ts_ms, 0)
    if role == "src":
        return [
            state.events.total(now, _MIN),
            state.failures.total(now, _MIN),
            state.failures.total(now, 10 * _MIN),
            float(state.users.count(now)),
            state.http_4xx.total(now, _MIN),
            state.attack_urls.total(now, 10 * _MIN),
            float(state.paths.count(now)),
            state.flows.total(now, _MIN),
            float(state.dst_ports.count(now)),
            float(state.dst_ips.count(now)),
            *_NOT_IN_SCHEMA1,
        ]
    if role == "dst":
        return [
            float(state.srcs.count(now, _MIN)),
            state.flows.total(now, 10 * _S),
            state.packets.total(now, 10 * _S) / 10.0,
            state.bytes.total(now, 10 * _S) / 10.0,
        ]
    if role == "user":
        return [state.failures.total(now, 10 * _MIN), float(state.srcs.count(now))]
    if role == "service":
        n, mean, std = state.rt.stats(now, 5 * _MIN)
        events_5m = state.events.total(now, 5 * _MIN)
        z = 0.0
        if event.response_time_ms is not None and n >= 5:
            z = (event.response_time_ms - mean) / max(std, 1.0)
        return [
            state.events.total(now, _MIN),
            state.errors.total(now, 5 * _MIN) / events_5m if events_5m else 0.0,
            max(min(z, 50.0), -50.0),
        ]
    raise ValueError(f"unknown role {role!r}")


class WindowStoreV1:
    """Schema-1 entity states in memory, observed one event at a time."""

    def __init__(self, cfg: WindowConfig | None = None) -> None:
        self.cfg = cfg or WindowConfig()
        self.states: dict[str, EntityState] = {}
        self._since_sweep = 0

    def observe(self, event: Event) -> list[float]:
        """Update every entity the event belongs to and return its full feature vector."""
        parts: dict[str, list[float]] = {}
        for role, key in entity_keys(event).items():
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = EntityState(role, self.cfg)
            state.observe(event)
            parts[role] = role_features(role, state, event)
        self._since_sweep += 1
        if self._since_sweep >= 50_000:
            self.sweep(event.ts_ms)
        return assemble(event_features(event), parts)

    def observe_all(self, events: Iterable[Event]) -> list[list[float]]:
        """Feature vectors for events in the given order (sort by time first for event-time semantics)."""
        return [self.observe(e) for e in events]

    def sweep(self, now_ms: int) -> int:
        """Drop idle entities and prune the rest; returns how many were dropped."""
        self._since_sweep = 0
        idle = [k for k, s in self.states.items() if s.expired(now_ms)]
        for k in idle:
            del self.states[k]
        for s in self.states.values():
            s.prune()
        return len(idle)
