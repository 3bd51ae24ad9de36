"""The window store of feature schemas 2 and 3: entity windows in flat arrays, updated and read per batch."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..windows import WindowConfig
from . import kernel, maintain
from .layout import SERIES, series_table

__all__ = ["Batch", "StoreStats", "WindowStoreV2", "compile_kernels"]

_MAX_ENTRIES_PER_EVENT = 20  # table entries one event can add, all its roles (kernel.apply: 18 at most)
_TRIM_SLACK = 1024  # a distinct series may run this far past the cap before it is trimmed back
_SNAPSHOT_V = 2  # 2: feature schema 3 (two more source series, a fifth distinct count)


@dataclass(slots=True)
class Batch:
    """A batch of events as the kernel reads them: one array per input, one row per event.

    `keys` holds each event's entity keys by role (`src:…`, `dst:…`, `user:…`, `service:…`, or
    None); the store interns them. Value hashes are `features.windows.value_key` of the value,
    0 for none; `ts` is event time in ms.
    """

    ts: np.ndarray  # int64
    keys: Sequence[Sequence[str | None]]  # per role (src, dst, user, service): a key per event or None
    fail: np.ndarray  # int8: an authentication failure (features.entities.is_failure)
    status: np.ndarray  # int32: HTTP status, -1 for none
    err: np.ndarray  # int8: log level error or worse
    atk: np.ndarray  # int8: attack tokens in the path
    sens: np.ndarray  # int8: a sensitive file or admin console asked for (features.web.is_sensitive_path)
    rt: np.ndarray  # float64: response time in ms, NaN for none
    flow: np.ndarray  # int8: a network flow
    packets: np.ndarray  # float64: both directions
    bytes: np.ndarray  # float64: both directions
    values: np.ndarray  # int64 (6, n): hashes of user, dst port, dst ip, path, source, non-static path
    # int8: kernel.READ_ONLY to read an event's windows without counting it (a redelivery); after
    # `observe`, kernel.LATE marks an event too late to count. None: count every event.
    flag: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """How big the store is: entities, table entries, and the bytes its arrays hold."""

    entities: int
    buckets: int
    values: int
    state_bytes: int

    @property
    def bytes_per_entity(self) -> float:
        return self.state_bytes / self.entities if self.entities else 0.0


class WindowStoreV2:
    """Every entity's windows for one worker partition (or one offline run): batch in, role features out.

    Memory is bounded by construction: a bucket lives at most as long as the longest span read
    plus the lateness, a distinct series holds at most `cap + 1024` values between trims, and
    an entity idle past the TTL (event time) is dropped at the next `sweep`.
    """

    def __init__(self, cfg: WindowConfig | None = None, *, capacity: int = 1024) -> None:
        self.cfg = cfg or WindowConfig()
        self.width, self.keep = series_table(self.cfg.allowed_lateness_ms)
        self.ids: dict[str, int] = {}
        self._free: list[int] = []
        self._alloc_entities(max(capacity, 16))
        self._bkeys, self._bidx = _bucket_table(1 << 12)
        self._pool = np.zeros((1 << 11, 8))  # rows of 8 buckets, handed out in order (`_pn`)
        self._pn = np.zeros(1, np.int64)
        self._vkeys, self._vown, self._vlast = _value_table(1 << 12)
        self._bused = 0
        self._vused = 0
        self._over = np.zeros(65, np.int64)  # distinct series over the limit: count, then up to 64 of them
        self.late_events = 0

    # -- entities ---------------------------------------------------------------------------
    def _alloc_entities(self, n: int) -> None:
        self.role = np.full(n, -1, np.int8)
        self.wm = np.full(n, kernel.NO_TIME, np.int64)
        self.last_seen = np.full(n, kernel.NO_TIME, np.int64)
        self.late = np.zeros(n, np.int64)
        self.ndist = np.zeros((n, kernel.N_DSLOT), np.int32)
        self.used = np.zeros(n, np.int64)

    def _grow_entities(self, need: int) -> None:
        n = len(self.role)
        if need <= n:
            return
        size = max(need, 2 * n)
        old = self._entity_arrays()
        self._alloc_entities(size)
        for new, prev in zip(self._entity_arrays(), old, strict=True):
            new[:n] = prev

    def _entity_arrays(self) -> tuple[np.ndarray, ...]:
        return self.role, self.wm, self.last_seen, self.late, self.ndist, self.used

    def _intern(self, keys: Sequence[str | None]) -> np.ndarray:
        ids, free = self.ids, self._free
        out = np.full(len(keys), -1, np.int64)
        for i, key in enumerate(keys):
            if key is None:
                continue
            got = ids.get(key)
            if got is None:
                got = ids[key] = free.pop() if free else len(ids)
            out[i] = got
        return out

    # -- the batch path ----------------------------------------------------------------------
    def observe(self, batch: Batch) -> np.ndarray:
        """Count each event in its entities' windows (in batch order); each event's role features.

        Returns an (n, 22) array in `extract.ROLE_FEATURES` order (src, dst, user, service),
        read right after the event was counted; a role the event lacks reads zeros.
        """
        n = len(batch)
        ids = np.stack([self._intern(k) for k in batch.keys]) if n else np.zeros((4, 0), np.int64)
        self._grow_entities(len(self.ids) + len(self._free) + 1)
        self._reserve(n * _MAX_ENTRIES_PER_EVENT)
        out = np.zeros((n, kernel.N_OUT))
        if n == 0:
            return out
        if batch.flag is None:
            batch.flag = np.zeros(n, np.int8)
        entries, late = kernel.apply(
            np.maximum(batch.ts.astype(np.int64), 0), ids, batch.fail, batch.status, batch.err, batch.atk, batch.sens,
            batch.rt, batch.flow, batch.packets, batch.bytes, batch.values, batch.flag,
            self.role, self.wm, self.last_seen, self.late, self.ndist, self.used,
            self._bkeys, self._bidx, self._pool, self._pn, self._vkeys, self._vown, self._vlast,
            self.width, self.cfg.allowed_lateness_ms, self.cfg.distinct_cap, self.cfg.distinct_cap + _TRIM_SLACK,
            self._over, out)
        self._bused += entries  # bucket and value entries together: an upper bound for each table
        self._vused += entries
        self.late_events += late
        if self._over[0]:
            maintain.trim(self._bkeys, self._bidx, self._pool, self._vkeys, self._vown, self._vlast, self.ndist,
                        self.width, self.cfg.distinct_cap, self._over)
        return out

    def _reserve(self, extra: int) -> None:
        """Rebuild the tables if `extra` more entries could push either past half full; grow the pool to fit them."""
        if (self._bused + extra) * 2 > len(self._bkeys) or (self._vused + extra) * 2 > len(self._vkeys):
            self._rebuild(np.ones(len(self.role), np.bool_), extra)
        need = int(self._pn[0]) + extra
        if need > len(self._pool):
            pool = np.zeros((max(need, 2 * len(self._pool)), 8))
            pool[: len(self._pool)] = self._pool
            self._pool = pool

    def _rebuild(self, alive: np.ndarray, extra: int = 0) -> None:
        live_b = int(np.count_nonzero(self._bkeys != kernel.EMPTY))
        live_v = int(np.count_nonzero(self._vkeys >= 0))
        # Room for three times what is live (plus the batch's worst case): at most a third full
        # after a rebuild, so the next one waits until the table doubles its entries.
        bcap = _pow2(3 * (live_b + extra) + 1024)
        vcap = _pow2(3 * (live_v + extra) + 1024)
        pcap = live_b + max(live_b // 2, extra) + 1024  # a pool grown later is copied, not rehashed
        self._bkeys, self._bidx, self._pool, rows, self._vkeys, self._vown, self._vlast = maintain.rebuild(
            self._bkeys, self._bidx, self._pool, self._vkeys, self._vown, self._vlast, self.wm, alive, self.ndist,
            self.width, self.keep, self.cfg.distinct_cap, bcap, pcap, vcap)
        self._pn[0] = rows
        self._bused = int(np.count_nonzero(self._bkeys != kernel.EMPTY))
        self._vused = int(np.count_nonzero(self._vkeys >= 0))

    def sweep(self, now_ms: int) -> int:
        """Drop entities idle (event time) past the TTL and every bucket no read can reach; how many dropped."""
        idle = [(k, e) for k, e in self.ids.items() if self.cfg.idle(int(self.last_seen[e]), now_ms)]
        alive = np.ones(len(self.role), np.bool_)
        for key, e in idle:
            alive[e] = False
            del self.ids[key]
            self._free.append(e)
        self._rebuild(alive)
        for arr, empty in ((self.role, -1), (self.wm, kernel.NO_TIME), (self.last_seen, kernel.NO_TIME),
                           (self.late, 0), (self.used, 0)):
            arr[~alive] = empty
        self.ndist[~alive] = 0
        return len(idle)

    # -- state ---------------------------------------------------------------------------------
    def stats(self) -> StoreStats:
        arrays = (*self._entity_arrays(), self._bkeys, self._bidx, self._pool, self._vkeys, self._vown, self._vlast)
        return StoreStats(entities=len(self.ids), buckets=int(np.count_nonzero(self._bkeys != kernel.EMPTY)),
                          values=int(np.count_nonzero(self._vkeys >= 0)),
                          state_bytes=sum(a.nbytes for a in arrays))

    def snapshot(self) -> bytes:
        """Everything the store holds, as bytes `restore` reads back into an equal store."""
        self._rebuild(np.ones(len(self.role), np.bool_))  # pruned and compact: what is written is what counts
        keys = list(self.ids)
        eids = np.fromiter((self.ids[k] for k in keys), np.int64, len(keys))
        # Keys hold client-chosen text (user names): kept as UTF-8 bytes and lengths, since a
        # numpy string array would drop trailing NULs.
        encoded = [k.encode("utf-8", "surrogatepass") for k in keys]
        bl, vl = self._bkeys != kernel.EMPTY, self._vkeys >= 0  # live entries only: tables are mostly empty
        buf = io.BytesIO()
        np.savez(buf, v=np.int64(_SNAPSHOT_V), lateness=np.int64(self.cfg.allowed_lateness_ms),
                 key_bytes=np.frombuffer(b"".join(encoded), np.uint8),
                 key_lengths=np.array([len(k) for k in encoded], np.int64), eids=eids,
                 role=self.role, wm=self.wm, last_seen=self.last_seen, late=self.late, ndist=self.ndist, used=self.used,
                 bkeys=self._bkeys[bl], bvals=self._pool[self._bidx[bl]], vkeys=self._vkeys[vl], vown=self._vown[vl],
                 vlast=self._vlast[vl],
                 free=np.array(self._free, np.int64), late_events=np.int64(self.late_events))
        return buf.getvalue()

    @classmethod
    def restore(cls, data: bytes, cfg: WindowConfig | None = None) -> WindowStoreV2:
        """The store `snapshot` wrote; its lateness must match `cfg`'s (bucket lifetimes depend on it)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["v"]) != _SNAPSHOT_V:
                raise ValueError(f"window store snapshot version {int(z['v'])}, this code reads {_SNAPSHOT_V}")
            store = cls(cfg)
            if int(z["lateness"]) != store.cfg.allowed_lateness_ms:
                raise ValueError(f"snapshot taken with {int(z['lateness'])} ms lateness, store configured with "
                                 f"{store.cfg.allowed_lateness_ms} ms")
            blob, ends = z["key_bytes"].tobytes(), np.cumsum(z["key_lengths"]).tolist()
            keys = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            store.ids = dict(zip(keys, z["eids"].tolist(), strict=True))
            store._free = z["free"].tolist()
            store.role, store.wm, store.last_seen = z["role"], z["wm"], z["last_seen"]
            store.late, store.ndist, store.used = z["late"], z["ndist"], z["used"]
            bk, vk = z["bkeys"], z["vkeys"]
            rows = z["bvals"]
            store._bkeys, store._bidx, store._pool, n, store._vkeys, store._vown, store._vlast = maintain.load(
                bk, rows, vk, z["vown"], z["vlast"], _pow2(3 * len(bk) + 1024), len(bk) + len(bk) // 2 + 1024,
                _pow2(3 * len(vk) + 1024))
            store._pn[0] = n
            store.late_events = int(z["late_events"])
        store._bused = int(np.count_nonzero(store._bkeys != kernel.EMPTY))
        store._vused = int(np.count_nonzero(store._vkeys >= 0))
        return store


def compile_kernels() -> None:
    """Run every kernel once on a tiny batch, so numba compiles (or loads from its cache) each of them now."""
    n = 4
    values = np.zeros((6, n), np.int64)
    values[1] = np.arange(1, n + 1)
    values[5] = np.arange(1, n + 1)
    batch = Batch(ts=np.arange(n, dtype=np.int64) * 1000 + 1_700_000_000_000,
                  keys=[[f"src:{i}" for i in range(n)], ["dst:0"] * n, ["user:0"] * n, ["service:0"] * n],
                  fail=np.ones(n, np.int8), status=np.full(n, 500, np.int32), err=np.ones(n, np.int8),
                  atk=np.ones(n, np.int8), sens=np.ones(n, np.int8), rt=np.ones(n), flow=np.ones(n, np.int8),
                  packets=np.ones(n), bytes=np.ones(n), values=values)
    store = WindowStoreV2(WindowConfig(distinct_cap=1))
    store.observe(batch)
    store._over[:2] = (1, store.ids["src:0"] * 32 + kernel.SRC_PORTS)
    maintain.trim(store._bkeys, store._bidx, store._pool, store._vkeys, store._vown, store._vlast, store.ndist,
                store.width, 1, store._over)
    store.sweep(int(batch.ts[-1]))
    WindowStoreV2.restore(store.snapshot(), store.cfg).observe(batch)


def _pow2(n: int) -> int:
    return 1 << max(int(n - 1).bit_length(), 4)


def _bucket_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, kernel.EMPTY, np.int64), np.zeros(n, np.int32)


def _value_table(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(n, kernel.EMPTY, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)


if not len(SERIES) == len(kernel.DSLOT) <= 32:  # series ids take 5 bits of every table key
    raise RuntimeError(f"layout has {len(SERIES)} series, the kernel {len(kernel.DSLOT)} (at most 32)")
