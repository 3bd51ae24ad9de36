"""The entity table: packed states, decoded per batch, kept decoded while busy, swept when idle.

The entity table holds packed states (`EntityState.pack`); a batch decodes the ones it
touches. A busy entity (a DDoS target, a popular server) is touched by almost every batch,
and its state is the largest (hundreds of buckets). Its decoded object is kept here beside
the exact bytes it was packed to, and reused only while the table still holds those very
bytes: a changelog recovery, an expiry or another write replaces them and the entry no
longer applies. A state reused after a failed batch was mutated in place, but its counts
and its applied-input marks moved together, so the redelivered inputs are skipped as
duplicates, as they would be by the state the batch would have written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any

from features.entities import EntityState
from features.windows import WindowConfig

from ..internal import partition_for

if TYPE_CHECKING:
    from ..ordering.runtime import Ordering
    from .context import StageContext

__all__ = ["DecodedStates", "EntityStates"]

log = logging.getLogger("streamguard.worker")

DECODED_STATES_BYTES = 8 * 1024 * 1024  # packed size of the states kept decoded between hop batches


class DecodedStates:
    """(key -> packed bytes, decoded state) up to `max_bytes` of packed size, least recently used dropped first.

    The budget is in packed bytes because state sizes vary by orders of magnitude (a quiet
    source packs to ~0.4 KiB, a DDoS target to ~100 KiB); live objects take ~5x their packed size.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[bytes, Any]] = OrderedDict()

    def get(self, key: bytes, packed: bytes | None) -> Any | None:
        """The decoded state of `key` if it was decoded from exactly `packed` (the table's value)."""
        entry = self._entries.get(key)
        if entry is None or packed is None or entry[0] is not packed:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes, packed: bytes, state: Any) -> None:
        """Remember that `state` is `key`'s value `packed`, as just written to the table."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old[0])
        self._entries[key] = (packed, state)
        self.bytes += len(packed)
        while self.bytes > self.max_bytes and self._entries:
            _, (dropped, _) = self._entries.popitem(last=False)
            self.bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


class EntityStates:
    """The entity table as the hop stage uses it: packed states in, decoded states out, idle ones swept."""

    def __init__(self, ctx: StageContext, cfg: WindowConfig, ordering: Ordering) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.ordering = ordering
        self.table = ctx.tables.entities
        self.decoded = DecodedStates(DECODED_STATES_BYTES)

    def get(self, key: bytes) -> EntityState | None:
        """The entity's state from the table, decoded; None if it has none (or it was unreadable)."""
        packed = self.table.get(key)
        if packed is None:
            return None
        state = self.decoded.get(key, packed)
        if state is not None:
            return state
        try:
            return EntityState.unpack(packed, self.cfg)
        except Exception as exc:  # noqa: BLE001 - a corrupt record must not stop every event of the entity
            log.error("entity %r: unreadable state in the table (%r); starting it afresh", key, exc)
            self.ctx.metrics.states_unreadable.inc()
            return None

    async def write(self, touched: dict[bytes, EntityState]) -> None:
        """Write each touched state once, packed, durably (its changelog record is on the broker on return)."""
        packed = [(key, self._fitting(key, state, touched)) for key, state in list(touched.items())]
        await self.ctx.write_durably(self.table, packed)
        for key, value in packed:
            self.decoded.put(key, value, touched[key])

    def _fitting(self, key: bytes, state: EntityState, touched: dict[bytes, EntityState]) -> bytes:
        """The packed state, or, if it exceeds the record limit, a fresh state that keeps only its clocks and marks.

        Windows keep hashes and have caps, so a state is bounded by construction (well under
        1 MiB, see the tests); a record the broker refuses would stop the hop stage, so this is
        the last net. The entity's counts start again; its redelivery marks are kept.
        """
        data = state.pack()
        if len(data) + len(key) <= self.ctx.max_record_bytes:
            return data
        self.ctx.metrics.records_too_large.labels("entity_state").inc()
        log.error("entity %r: state of %d bytes exceeds the %d-byte record limit; its windows start again",
                  key[:100], len(data), self.ctx.max_record_bytes)
        fresh = EntityState(state.role, self.cfg)
        fresh.watermark_ms, fresh.last_seen_ms, fresh.applied = state.watermark_ms, state.last_seen_ms, state.applied
        touched[key] = fresh
        return fresh.pack()

    async def sweep(self) -> None:
        """Drop entities idle (in event time) past the TTL; refresh the entity gauges."""
        ctx, ordering = self.ctx, self.ordering
        if ordering.max_event_ms == 0:
            return
        hops = ctx.topics.hops.get_topic_name()
        assigned = {tp.partition for tp in ctx.app.assignor.assigned_actives() if tp.topic == hops}
        n_parts = ctx.settings.topic_partitions
        roles: Counter[str] = Counter()
        dropped = 0
        for key in list(self.table.keys()):
            # Keys of partitions this worker no longer owns may linger in memory: leave them.
            part = partition_for(key, n_parts)
            if part not in assigned:
                continue
            packed = self.table.get(key)
            if packed is None:
                continue
            try:
                role, last_seen = EntityState.peek(packed)
            except Exception:  # noqa: BLE001 - unreadable: the next update starts it afresh anyway
                continue
            if self.cfg.idle(last_seen, ordering.partition_watermark.get(part, 0)):
                del self.table[key]
                dropped += 1
            else:
                roles[role] += 1
            await asyncio.sleep(0)  # a large table must not starve the agents
        for role in ("src", "dst", "user", "service"):
            ctx.metrics.entities.labels(role).set(roles[role])
        if dropped:
            log.info("dropped %d idle entities", dropped)
