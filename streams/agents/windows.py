"""Window stores per hop partition: hops applied a batch at a time, checkpointed by snapshot, restored and replayed.

Each hop partition this worker owns has one compiled store (`features.store.WindowStoreV2`)
holding the windows of every entity keyed to that partition, and the last delivery position
applied per origin: the raw input partition for a first hop, the previous hop partition for
the others (with the lane it was released in there: `internal.via_origin`). The hops of one
origin are applied in offset order (`streams.ordering.hold` keeps each lane's arrival order,
`HopStage._in_order` keeps arrival in offset order) and arrive in the origin's order, so a
position at or below its origin's mark is a redelivery: its windows are read, not counted
again.

Recovery is snapshots plus replay (docs/design/core-v2.md). A hop input is acknowledged only
once a snapshot covering it is on the broker (the `window-snapshots` table), so after a crash
the inputs after the last snapshot are delivered again and applied to the restored store in
the same order: the same windows, the same features. Nothing is written per entity per batch.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from features.entities import ROLES
from features.events import event_from_dict
from features.extract import ROLE_FEATURES
from features.store import WindowStoreV2, batch_from_inputs, check_inputs, kernel_inputs
from features.store.kernel import LATE, READ_ONLY
from features.store.layout import ROLE_IDS
from features.windows import WindowConfig

from ..internal import Hop, delivered_by, event_time, hop_event, partition_for

if TYPE_CHECKING:
    from ..ordering.runtime import Ordering
    from .context import StageContext

__all__ = ["PartitionWindows", "Prepared", "WindowStates", "apply_hops", "prepare_hop"]

log = logging.getLogger("streamguard.worker")

_HEAD = struct.Struct(">4sBI")  # magic, format version, length of the marks' JSON
_MAGIC = b"SGW2"
_V = 1
COST_FACTOR = 20.0  # a checkpoint at most once per this many times the last one's cost
# Each role's slice of the kernel's output row (extract.ROLE_FEATURES order).
_SLICES: dict[str, slice] = {}
_at = 0
for _role in ROLES:
    _SLICES[_role] = slice(_at, _at + len(ROLE_FEATURES[_role]))
    _at += len(ROLE_FEATURES[_role])


@dataclass(slots=True)
class PartitionWindows:
    """One hop partition's windows: the compiled store and the last position applied per origin."""

    store: WindowStoreV2
    marks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, cfg: WindowConfig) -> PartitionWindows:
        return cls(WindowStoreV2(cfg))

    def snapshot(self) -> bytes:
        """The store and the marks as bytes `restore` reads back."""
        marks = orjson.dumps(self.marks)
        return _HEAD.pack(_MAGIC, _V, len(marks)) + marks + self.store.snapshot()

    @classmethod
    def restore(cls, data: bytes, cfg: WindowConfig) -> PartitionWindows:
        """What `snapshot` wrote; raises ValueError on anything else."""
        if len(data) < _HEAD.size:
            raise ValueError(f"window snapshot of {len(data)} bytes is too short")
        magic, v, n = _HEAD.unpack_from(data)
        if magic != _MAGIC or v != _V:
            raise ValueError(f"not a window snapshot this code reads (starts {data[:5]!r})")
        marks = orjson.loads(data[_HEAD.size:_HEAD.size + n])
        store = WindowStoreV2.restore(data[_HEAD.size + n:], cfg)
        return cls(store, {sys.intern(str(k)): int(v) for k, v in marks.items()})


@dataclass(slots=True)
class Prepared:
    """A hop read and checked: its message, event time and kernel inputs, the entity it visits, its origin."""

    msg: dict[str, Any]
    ts: int
    inputs: list[int | float | None]
    role: str
    key: str
    origin: str
    offset: int


def prepare_hop(msg: dict[str, Any]) -> Prepared:
    """Read what applying the hop needs; raises on a hop this code cannot apply (the stage dead-letters it)."""
    role, key = msg["route"][msg["i"]]
    if role not in ROLE_IDS or not isinstance(key, str):
        raise ValueError(f"hop bound for unknown role {role!r}")
    if not isinstance(msg["parts"], dict):
        raise ValueError("hop features read so far are not an object")
    # Duplicates are recognised by the position of the message that delivered the event here:
    # the raw input for the first entity, the previous hop's (offset, index) for the others.
    origin, offset = delivered_by(msg)
    if "k" in msg:
        inputs = check_inputs(msg["k"])
    else:  # a hop written before the kernel inputs travelled: rebuilt from its event
        inputs = kernel_inputs(event_from_dict(hop_event(msg)))
    return Prepared(msg, event_time(msg), inputs, role, key, origin, offset)


def apply_hops(windows: PartitionWindows,
               hops: Sequence[tuple[Prepared, tuple[str, int] | None]]) -> list[tuple[Hop, str]]:
    """Count a partition's hops, in order, in its store; each one's next hop (features added) and outcome.

    Outcomes: "counted", "late" (older than the lateness allows, not counted) or "duplicate"
    (this input was applied before: read, not counted). `at` is where the hop was read (hop
    topic partition, position); it becomes the next hop's delivery origin.
    """
    n = len(hops)
    if n == 0:
        return []
    keys: list[list[str | None]] = [[None] * n for _ in ROLES]  # each hop counts in its one entity only
    flag = np.zeros(n, np.int8)
    marks = windows.marks
    moved: dict[str, int] = {}  # marks move only once the batch is counted: a failed batch is applied again
    for j, (p, _) in enumerate(hops):
        keys[ROLE_IDS[p.role]][j] = p.key
        if p.offset <= moved.get(p.origin, marks.get(p.origin, -1)):
            flag[j] = READ_ONLY
        else:
            moved[p.origin] = p.offset
    batch = batch_from_inputs([p.ts for p, _ in hops], [p.inputs for p, _ in hops], keys)
    batch.flag = flag
    out = windows.store.observe(batch)
    for origin, offset in moved.items():
        marks[sys.intern(origin)] = offset
    result = []
    rows, flags = out.tolist(), flag.tolist()  # one conversion, not one per hop
    for j, (p, at) in enumerate(hops):
        held = p.msg
        i = held["i"] + 1
        # A new message: the one held stays as it came, should this batch have to be applied again.
        msg = {**held, "parts": {**held["parts"], p.role: rows[j][_SLICES[p.role]]}, "i": i}
        if at is not None:
            msg["via"] = [at[0], at[1]]
        route = held["route"]
        nxt = route[i][1].encode() if i < len(route) else None
        f = flags[j]
        result.append((Hop(nxt, msg), "duplicate" if f == READ_ONLY else "late" if f == LATE else "counted"))
    return result


@cache
def _key(part: int, partitions: int, stem: str) -> bytes:
    """A table key Kafka's partitioner puts in `part` (where the partition's snapshot must live): `stem`, salted."""
    for salt in range(1_000 * partitions + 1_000):
        key = f"{stem}~{salt}".encode()
        if partition_for(key, partitions) == part:
            return key
    raise RuntimeError(f"no key for partition {part} of {partitions}")  # murmur2 spreads; never seen


def manifest_key(part: int, partitions: int) -> bytes:
    return _key(part, partitions, f"windows:{part}")


def chunk_key(part: int, partitions: int, gen: int, index: int) -> bytes:
    return _key(part, partitions, f"windows:{part}:{gen}:{index}")


class WindowStates:
    """The hop stage's stores: one per owned hop partition, restored from the snapshot table, checkpointed to it."""

    def __init__(self, ctx: StageContext, cfg: WindowConfig, ordering: Ordering) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.ordering = ordering
        self.table = ctx.tables.windows
        self.partitions = ctx.settings.topic_partitions
        self.parts: dict[int, PartitionWindows] = {}
        self.pending: dict[int, list[Any]] = {}  # inputs applied, acknowledged once a snapshot covers them
        self._gen: dict[int, tuple[int, int]] = {}  # the partition's last snapshot: generation, chunks
        self.last_checkpoint = time.monotonic()
        self.last_cost_s = 0.0  # how long the last checkpoint took (wall clock)

    def due(self, min_interval_s: float, max_interval_s: float) -> bool:
        """True when a checkpoint is due: 20x its last cost after the last one, within the two bounds.

        A small store is checkpointed within a fraction of a second (after a crash little input is
        read again); a large one as often as about 5 % of the stage's time allows.
        """
        interval = min(max(min_interval_s, COST_FACTOR * self.last_cost_s), max_interval_s)
        return time.monotonic() - self.last_checkpoint >= interval

    def get(self, part: int) -> PartitionWindows:
        """The partition's windows: in memory, else its last snapshot, else empty."""
        windows = self.parts.get(part)
        if windows is None:
            windows = self.parts[part] = self._load(part)
        return windows

    def _load(self, part: int) -> PartitionWindows:
        raw = self.table.get(manifest_key(part, self.partitions))
        if raw is None:
            return PartitionWindows.empty(self.cfg)
        try:
            manifest = orjson.loads(raw)
            gen, count = int(manifest["gen"]), int(manifest["chunks"])
            self._gen[part] = (gen, count)
            chunks = [self.table.get(chunk_key(part, self.partitions, gen, i)) for i in range(count)]
            if any(c is None for c in chunks):
                raise ValueError(f"snapshot {gen} lacks {sum(c is None for c in chunks)} of its {count} chunks")
            data = b"".join(chunks)
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                raise ValueError(f"snapshot {gen} does not match its checksum")
            windows = PartitionWindows.restore(data, self.cfg)
        except Exception as exc:  # noqa: BLE001 - a corrupt snapshot must not stop the partition for good
            log.error("hop partition %d: unreadable window snapshot (%r); its windows start afresh", part, exc)
            self.ctx.metrics.states_unreadable.inc()
            return PartitionWindows.empty(self.cfg)
        log.info("hop partition %d: windows restored (%d entities, %d bytes)", part, len(windows.store.ids), len(data))
        return windows

    def applied(self, part: int, token: Any) -> None:
        """An input whose hops are all applied and sent: acknowledged at the partition's next checkpoint."""
        self.pending.setdefault(part, []).append(token)

    def has_pending(self) -> bool:
        return any(self.pending.values())

    async def checkpoint(self) -> list[Any]:
        """Write a snapshot of each partition with inputs pending, durably; the inputs now safe to acknowledge."""
        ctx = self.ctx
        started = time.monotonic()
        items: list[tuple[bytes, bytes | None]] = []
        written: dict[int, tuple[int, int]] = {}  # partition -> (generation, chunks), once on the broker
        chunk = max(64 * 1024, int(ctx.max_record_bytes * 0.9) - 256)
        for part, tokens in self.pending.items():
            windows = self.parts.get(part)
            if not tokens or windows is None:
                continue
            data = windows.snapshot()
            old_gen, old_count = self._gen.get(part, (0, 0))
            gen = old_gen + 1
            pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
            items += [(chunk_key(part, self.partitions, gen, i), piece) for i, piece in enumerate(pieces)]
            manifest = {"gen": gen, "chunks": len(pieces), "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "entities": len(windows.store.ids)}
            # After its chunks (one partition, one producer: in order), so a manifest never names
            # missing chunks; the last generation's chunks go after it.
            items.append((manifest_key(part, self.partitions), orjson.dumps(manifest)))
            items += [(chunk_key(part, self.partitions, old_gen, i), None) for i in range(old_count)]
            written[part] = (gen, len(pieces))
            ctx.metrics.window_snapshot_bytes.set(len(data))
        if items:
            # A failed write leaves the inputs pending: the next checkpoint writes the same generation again.
            await ctx.write_durably(self.table, items)
        done: list[Any] = []
        for part, gen_chunks in written.items():
            self._gen[part] = gen_chunks
            done += self.pending.pop(part)
        self.last_checkpoint = time.monotonic()
        self.last_cost_s = self.last_checkpoint - started
        ctx.metrics.window_checkpoint_seconds.observe(self.last_cost_s)
        return done

    def keep_only(self, assigned: set[int], generation: int) -> None:
        """Forget partitions no longer owned, and inputs of an older consumer generation (they come again)."""
        for part in [p for p in self.parts if p not in assigned]:
            del self.parts[part]
            self._gen.pop(part, None)
        for part, tokens in list(self.pending.items()):
            if part not in assigned:
                del self.pending[part]
            else:
                self.pending[part] = [t for t in tokens if t.message.generation_id == generation]

    def sweep(self, assigned: set[int]) -> None:
        """Drop entities idle (in event time) past the TTL; refresh the entity gauges."""
        roles = np.zeros(len(ROLES), np.int64)
        dropped = state_bytes = 0
        for part, windows in self.parts.items():
            if part not in assigned:
                continue
            now = self.ordering.partition_watermark.get(part, 0)
            if now:
                dropped += windows.store.sweep(now)
            role = windows.store.role
            roles += np.bincount(role[role >= 0], minlength=len(ROLES))[: len(ROLES)]
            state_bytes += windows.store.stats().state_bytes
        for i, role in enumerate(ROLES):
            self.ctx.metrics.entities.labels(role).set(int(roles[i]))
        self.ctx.metrics.window_state_bytes.set(state_bytes)
        if dropped:
            log.info("dropped %d idle entities", dropped)
