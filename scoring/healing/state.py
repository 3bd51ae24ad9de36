"""The healing policy's memory: active blocks, offences, alert de-duplication, the breaker, issued actions."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ScoringError
from .policy import (
    ALERT_DEDUP_MS,
    BREAKER_WINDOW_MS,
    ISSUED_MEMORY,
    MAX_SOURCES,
    SNAPSHOT_FORMAT,
    Action,
    PolicyConfig,
)

ATTACK_MEMORY_MS = 600_000  # a source counts as attacking a destination this long after its last threat
ATTACKED_TARGETS = 64  # destinations whose attacking sources are remembered (the least recent go first)

__all__ = ["AlertKey", "Block", "HealingState", "TargetKey"]


@dataclass
class Block:
    """One active blocking action, as remembered by the state."""

    action_id: str
    action: str
    target_type: str
    target: str
    label: str
    event_id: str
    risk: int
    started_ms: int
    expires_ms: int
    dry_run: bool
    policy_version: str
    hits: int = 0  # further threats seen against the target while it was blocked
    sources: list[str] = field(default_factory=list)  # a target-side block: the attacking sources seen

    def note_source(self, source: str, cap: int) -> None:
        """Add an attacking source seen while the block is active (the latest `cap` are kept)."""
        if source in self.sources:
            return
        self.sources.append(source)
        del self.sources[:-cap]


def _action_dict(a: Action) -> dict:
    d = dict(vars(a))
    d["threat_event_ids"] = list(a.threat_event_ids)
    d["sources"] = list(a.sources)
    return d


TargetKey = tuple[str, str]  # (target_type, target)
AlertKey = tuple[str, str, str]  # (target_type, target, label)


class HealingState:
    """Per-policy mutable state: active blocks, offence history, alert de-dup and breaker times."""

    def __init__(self) -> None:
        self._active: dict[TargetKey, Block] = {}
        self._offences: dict[TargetKey, list[int]] = {}  # block start times, oldest first
        self._alerts: dict[AlertKey, int] = {}  # time of the last alert
        self._breaker: list[int] = []  # start times of recent blocking actions
        # Destination -> {attacking source: time of its last threat}, both least recent first.
        self._attacks: OrderedDict[TargetKey, OrderedDict[str, int]] = OrderedDict()
        # The actions of the last threats that caused any, by threat event id, oldest first:
        # a redelivered threat gets the same actions back (see `decide`).
        self._issued: dict[str, tuple[Action, ...]] = {}
        # Min-heaps of (time, key) index the two big maps by age, so forgetting costs
        # O(log n) per entry instead of a scan of every target on every call; they are
        # derived data, rebuilt by restore() and never snapshotted. The offence heap holds
        # one entry per target, at or before its oldest remembered offence.
        self._offence_heap: list[tuple[int, TargetKey]] = []
        self._alert_heap: list[tuple[int, AlertKey]] = []

    def snapshot(self) -> dict:
        """The state as plain JSON-able data, sorted so equal states give equal snapshots."""
        return {
            "format": SNAPSHOT_FORMAT,
            "active": [dict(vars(self._active[k])) for k in sorted(self._active)],
            "offences": [[k[0], k[1], list(v)] for k, v in sorted(self._offences.items())],
            "alerts": [[k[0], k[1], k[2], t] for k, t in sorted(self._alerts.items())],
            "breaker": sorted(self._breaker),
            "issued": [[event_id, [_action_dict(a) for a in actions]] for event_id, actions in self._issued.items()],
            "attacks": [[k[0], k[1], [[src, t] for src, t in srcs.items()]] for k, srcs in self._attacks.items()],
        }

    def _note_attack(self, key: TargetKey, source: str, now_ms: int) -> None:
        """Remember that `source` attacked destination `key` at `now_ms` (bounded per target and in targets)."""
        srcs = self._attacks.pop(key, None)
        if srcs is None:
            srcs = OrderedDict()
        self._attacks[key] = srcs
        srcs.pop(source, None)
        srcs[source] = now_ms
        while len(srcs) > MAX_SOURCES:
            srcs.popitem(last=False)
        while len(self._attacks) > ATTACKED_TARGETS:
            self._attacks.popitem(last=False)

    def shed(self) -> bool:
        """Forget the least needed half of what is only remembered for convenience; False when nothing is left.

        For a state too large for one record: attacking sources first (they only list names on
        a target-side action), then the oldest half of the issued actions (redelivery of those
        threats would then decide again), then the alert de-duplication. Blocks, offences and
        the breaker are kept.
        """
        if self._attacks:
            for _ in range(max(1, len(self._attacks) // 2)):
                self._attacks.popitem(last=False)
            return True
        if self._issued:
            for key in list(self._issued)[: max(1, len(self._issued) // 2)]:
                del self._issued[key]
            return True
        if self._alerts:
            # At worst one more alert for a (target, label) alerted in the last minute.
            self._alerts.clear()
            self._alert_heap.clear()
            return True
        return False

    def sources_of(self, key: TargetKey, now_ms: int) -> tuple[str, ...]:
        """The sources seen attacking destination `key` in the last `ATTACK_MEMORY_MS`, least recent first."""
        srcs = self._attacks.get(key, {})
        return tuple(s for s, t in srcs.items() if 0 <= now_ms - t < ATTACK_MEMORY_MS)

    def _record_issued(self, event_id: str, actions: Sequence[Action]) -> None:
        self._issued[event_id] = tuple(actions)
        while len(self._issued) > ISSUED_MEMORY:
            del self._issued[next(iter(self._issued))]

    @classmethod
    def restore(cls, data: dict) -> HealingState:
        """A state from `snapshot()` data; raises ScoringError when the data are malformed."""
        state = cls()
        try:
            if data.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"format must be {SNAPSHOT_FORMAT}, got {data.get('format')!r}")
            for b in data["active"]:
                block = Block(**b)
                state._active[(block.target_type, block.target)] = block
            for ttype, target, times in data["offences"]:
                state._offences[(str(ttype), str(target))] = sorted(int(t) for t in times)
            for ttype, target, label, t in data["alerts"]:
                state._alerts[(str(ttype), str(target), str(label))] = int(t)
            state._breaker = sorted(int(t) for t in data["breaker"])
            for event_id, actions in data.get("issued", ()):  # absent in snapshots before it existed
                state._issued[str(event_id)] = tuple(
                    Action(**{**a, "threat_event_ids": tuple(a["threat_event_ids"]),
                              "sources": tuple(a.get("sources", ()))}) for a in actions)
            for ttype, target, srcs in data.get("attacks", ()):  # absent in snapshots before it existed
                state._attacks[(str(ttype), str(target))] = OrderedDict((str(s), int(t)) for s, t in srcs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ScoringError(f"healing state snapshot is malformed: {exc}") from exc
        state._offence_heap = [(times[0], k) for k, times in state._offences.items() if times]
        state._offences = {k: v for k, v in state._offences.items() if v}
        heapq.heapify(state._offence_heap)
        state._alert_heap = [(t, k) for k, t in state._alerts.items()]
        heapq.heapify(state._alert_heap)
        return state

    def sizes(self) -> dict[str, int]:
        """How many entries each internal structure holds, for gauges and bound checks."""
        return {
            "active": len(self._active),
            "offence_targets": len(self._offences),
            "offences": sum(len(v) for v in self._offences.values()),
            "offence_index": len(self._offence_heap),
            "alerts": len(self._alerts),
            "issued": len(self._issued),
            "alert_index": len(self._alert_heap),
            "breaker": len(self._breaker),
            "attacked_targets": len(self._attacks),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HealingState):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"HealingState({', '.join(f'{k}={v}' for k, v in self.sizes().items())})"

    def _record_offence(self, key: TargetKey, now_ms: int, keep: int) -> None:
        """Remember a block of `key`; only the latest `keep` can change an escalation step."""
        times = self._offences.get(key)
        if times is None:
            heapq.heappush(self._offence_heap, (now_ms, key))
            times = []
        self._offences[key] = sorted(times + [now_ms])[-keep:]

    def _record_alert(self, key: AlertKey, now_ms: int) -> None:
        """Remember an alert for de-duplication."""
        self._alerts[key] = now_ms
        heapq.heappush(self._alert_heap, (now_ms, key))

    def _prune(self, cfg: PolicyConfig, now_ms: int) -> None:
        """Forget what no decision can use any more: old offences, alerts and breaker times."""
        self._breaker = [t for t in self._breaker if t > now_ms - BREAKER_WINDOW_MS]
        # Least recently attacked first: stop at the first destination still under attack.
        while self._attacks:
            key, srcs = next(iter(self._attacks.items()))
            if srcs and now_ms - next(reversed(srcs.values())) < ATTACK_MEMORY_MS:
                break
            del self._attacks[key]
        cut = now_ms - ALERT_DEDUP_MS
        heap = self._alert_heap
        while heap and heap[0][0] <= cut:
            _, key = heapq.heappop(heap)
            # The entry may be stale: the same key alerted again later and must stay.
            if key in self._alerts and self._alerts[key] <= cut:
                del self._alerts[key]
        cut = now_ms - cfg.offence_memory_s * 1000
        heap = self._offence_heap
        while heap and heap[0][0] <= cut:
            _, key = heapq.heappop(heap)
            recent = [t for t in self._offences.pop(key, ()) if t > cut]
            if recent:
                self._offences[key] = recent
                heapq.heappush(heap, (recent[0], key))

