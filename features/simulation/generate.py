"""Assembly: the benign components and the attacks merged into one time-ordered run, and its ground truth."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator

from ..events import LABEL_BENIGN
from .attacks import _ATTACK_FNS
from .benign import _BENIGN_COMPONENTS
from .formats import ATTACK_LABELS, RawEvent, _rng
from .population import ScenarioConfig, _Attack, _Ctx, _plan

__all__ = ["iter_generate", "generate", "attackers", "normal_sources"]


def _ts_key(ev: RawEvent) -> int:
    return ev.ts_ms


def _ordered(sessions: Iterable[tuple[float, list[RawEvent]]], end_ms: int) -> Iterator[RawEvent]:
    """Events of sessions (non-decreasing starts, events not before their start) in time order."""
    heap: list[tuple[int, int, RawEvent]] = []
    seq = itertools.count()
    for start, evs in sessions:
        bound = int(start)
        while heap and heap[0][0] < bound:
            yield heapq.heappop(heap)[2]
        for ev in evs:
            if ev.ts_ms < end_ms:
                heapq.heappush(heap, (ev.ts_ms, next(seq), ev))
    while heap:
        yield heapq.heappop(heap)[2]


def _attack_stream(ctx: _Ctx, a: _Attack) -> Iterator[RawEvent]:
    rng = _rng(ctx.cfg.seed, f"attack:{a.label}:{a.index}")
    evs = [e for e in _ATTACK_FNS[a.label](ctx, rng, a) if a.start_ms <= e.ts_ms < min(a.end_ms, ctx.end_ms)]
    evs.sort(key=_ts_key)
    yield from evs


def iter_generate(cfg: ScenarioConfig) -> Iterator[RawEvent]:
    """The events of `generate(cfg)`, in the same order, produced lazily.

    Benign components are merged session by session (memory bounded by the longest
    session); each attack is built whole (bounded by its 60-300 s window).
    """
    plan = _plan(cfg)
    ctx = _Ctx(cfg, plan)
    streams: list[Iterator[RawEvent]] = []
    for name, component in _BENIGN_COMPONENTS:
        streams.append(_ordered(component(ctx, _rng(cfg.seed, f"benign:{name}")), plan.end_ms))
    for attack in plan.attacks:
        streams.append(_attack_stream(ctx, attack))
    # heapq.merge is stable: equal timestamps keep stream order, then in-stream order.
    yield from heapq.merge(*streams, key=_ts_key)


def generate(cfg: ScenarioConfig) -> list[RawEvent]:
    """All events of the scenario, sorted by `ts_ms` (stable), deterministic for a given cfg."""
    return list(iter_generate(cfg))


def attackers(cfg: ScenarioConfig) -> dict[str, set[str]]:
    """Ground truth: scenario label -> actor IPs of that scenario (every attack label is a key;
    scenarios not in `cfg.attacks` map to an empty set)."""
    out: dict[str, set[str]] = {label: set() for label in ATTACK_LABELS}
    for a in _plan(cfg).attacks:
        out[a.label].update(a.actors)
    return out


def normal_sources(cfg: ScenarioConfig) -> set[str]:
    """Every source IP that appears in the run and only ever produces benign traffic."""
    bad: set[str] = set()
    for ips in attackers(cfg).values():
        bad |= ips
    seen: set[str] = set()
    for ev in iter_generate(cfg):
        if ev.label == LABEL_BENIGN and ev.actor not in seen and _looks_like_ipv4(ev.actor):
            seen.add(ev.actor)
    return seen - bad


def _looks_like_ipv4(s: str) -> bool:
    parts = s.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)
