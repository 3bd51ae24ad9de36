"""Incidents: the threats of one attack grouped per (target, label), opened, updated, closed when quiet.

One brute-force run is hundreds of threats and one scanner thousands; an analyst wants one
alert per attack that updates. An `IncidentBook` keeps the open incidents of the healing
policy's worker. It is pure: time is passed in (the heal stage's clock, in ms), and each
incident is plain data (`Incident.snapshot()` / `Incident.restore()`), so a table can hold
it one key per incident and write only the incidents a batch touched.

- A threat joins the open incident of its (target type, target, label), or opens one; its
  id is a hash of that triple and the first threat's event id, so a replay gives the same id.
  Labels in `by_destination` (a DDoS: one attack, many sources) are grouped by the address
  their event was sent to instead, and the incident lists the attacking sources.
- An incident's record is due when it opens, then at most every `update_every_ms` while it
  changes, and once more when it closes, `quiet_ms` after its last threat (clock of the
  worker, not event time: a replayed backlog is one incident per attack as it arrives).
- Actions decided for a threat are listed on its incident; an unblock on every open incident
  of its target.
- At most `max_open` incidents are open: opening one more closes the longest-quiet first, so
  an attacker who sprays labels and addresses costs bounded memory.
- Threats are counted once: the book remembers the last input position it counted (the
  healing topic has one partition), so a batch redelivered after a crash is not counted again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from .bundle import severity_for
from .errors import ScoringError
from .healing import Action, Threat

__all__ = ["Incident", "IncidentBook", "IncidentConfig", "IncidentKey", "incident_id"]

IncidentKey = tuple[str, str, str]  # (target_type, target, label)


@dataclass(frozen=True)
class IncidentConfig:
    """When incidents go out and close, and how much each keeps."""

    update_every_ms: int = 30_000  # an open incident's record goes out at most this often while it changes
    quiet_ms: int = 300_000  # closed this long after its last threat
    max_open: int = 10_000  # opening one more closes the longest-quiet incident first
    keep_event_ids: int = 20  # event ids of the first threats, kept as examples
    keep_actions: int = 20  # the latest actions taken
    keep_versions: int = 5  # model versions that raised its threats
    keep_sources: int = 100  # attacking sources listed on an incident grouped by destination
    by_destination: frozenset[str] = frozenset({"ddos"})  # labels grouped by their event's destination

    def __post_init__(self) -> None:
        if self.update_every_ms < 0 or self.quiet_ms <= 0 or self.max_open < 1:
            raise ScoringError(f"invalid incident settings: {self}")


def incident_id(key: IncidentKey, first_event_id: str) -> str:
    """Deterministic id: the same first threat of the same (target type, target, label) gives the same id."""
    return hashlib.sha256("\0".join((*key, first_event_id)).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class Incident:
    """One attack as the SOC sees it: its threats' count, span, worst risk, evidence and the actions taken."""

    incident_id: str
    target_type: str
    target: str
    label: str
    status: str  # "open" | "closed"
    opened_at_ms: int  # worker clock at the first threat
    updated_at_ms: int  # worker clock at the last change
    closed_at_ms: int | None
    first_seen_ms: int  # event time of the earliest threat
    last_seen_ms: int  # event time of the latest threat
    last_threat_ms: int  # worker clock at the latest threat (the quiet period counts from it)
    threat_count: int
    max_risk: int
    severity: str
    evidence: dict[str, float]  # the window features of the highest-risk threat
    event_ids: list[str]  # the first threats' event ids
    last_event_id: str
    actions: list[dict[str, Any]] = field(default_factory=list)  # the latest: id, action, dry_run, degraded, at
    model_versions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # grouped by destination: the first attacking sources
    revision: int = 1  # grows with every change: keep the highest
    emitted_revision: int = 0  # the revision last handed out (0: never; not part of the record)
    emitted_at_ms: int = 0

    @property
    def key(self) -> IncidentKey:
        return (self.target_type, self.target, self.label)

    def record(self) -> dict[str, Any]:
        """The incident as it goes on the wire (without the book-keeping of what was emitted)."""
        data = asdict(self)
        del data["emitted_revision"], data["emitted_at_ms"], data["last_threat_ms"]
        return data

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able data, for the table."""
        return asdict(self)

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Incident:
        """An incident from `snapshot()` data; raises ScoringError when malformed."""
        try:
            inc = cls(**data)
            inc.evidence = {str(k): float(v) for k, v in inc.evidence.items()}
            _ = inc.key, int(inc.revision), int(inc.last_threat_ms)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ScoringError(f"unreadable incident snapshot: {exc}") from None
        return inc


class IncidentBook:
    """The open incidents, by (target type, target, label), least recently active first."""

    def __init__(self, cfg: IncidentConfig | None = None) -> None:
        self.cfg = cfg or IncidentConfig()
        self._open: OrderedDict[IncidentKey, Incident] = OrderedDict()
        self._by_target: dict[tuple[str, str], set[IncidentKey]] = {}
        self._closed: list[Incident] = []  # closed early (the cap) and not yet handed out
        self._pending: set[IncidentKey] = set()  # open, changed since their record last went out
        self.applied_position = -1  # the last input position counted
        self.touched: set[IncidentKey] = set()  # changed since the caller last cleared it (what to write)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Incident]:
        return iter(self._open.values())

    def get(self, key: IncidentKey) -> Incident | None:
        return self._open.get(key)

    def observe(self, threat: Threat, actions: Iterable[Action], now_ms: int, *, position: int | None = None,
                event_time_ms: int | None = None, model_version: str | None = None) -> Incident | None:
        """Count one threat (and the actions decided for it) on its incident; None if `position` was counted before."""
        if position is not None:
            if position <= self.applied_position:
                return None
            self.applied_position = position
        cfg = self.cfg
        key = self.key_of(threat)
        seen_ms = event_time_ms if event_time_ms is not None else now_ms
        inc = self._open.get(key)
        if inc is None:
            while len(self._open) >= cfg.max_open:
                self._close(next(iter(self._open)), now_ms, early=True)
            inc = Incident(
                incident_id=incident_id(key, threat.event_id), target_type=key[0], target=key[1], label=key[2],
                status="open", opened_at_ms=now_ms, updated_at_ms=now_ms, closed_at_ms=None,
                first_seen_ms=seen_ms, last_seen_ms=seen_ms, last_threat_ms=now_ms, threat_count=0,
                max_risk=threat.risk, severity=severity_for(threat.risk), evidence=dict(threat.evidence),
                event_ids=[], last_event_id=threat.event_id, revision=0)
            self._open[key] = inc
            self._by_target.setdefault(key[:2], set()).add(key)
        else:
            self._open.move_to_end(key)
        inc.threat_count += 1
        inc.first_seen_ms = min(inc.first_seen_ms, seen_ms)
        inc.last_seen_ms = max(inc.last_seen_ms, seen_ms)
        inc.last_threat_ms = max(inc.last_threat_ms, now_ms)
        inc.updated_at_ms = now_ms
        inc.last_event_id = threat.event_id
        if len(inc.event_ids) < cfg.keep_event_ids:
            inc.event_ids.append(threat.event_id)
        if threat.risk > inc.max_risk:
            inc.max_risk, inc.severity, inc.evidence = threat.risk, severity_for(threat.risk), dict(threat.evidence)
        if model_version and model_version not in inc.model_versions:
            inc.model_versions = (inc.model_versions + [model_version])[-cfg.keep_versions:]
        if key[1] != threat.target and len(inc.sources) < cfg.keep_sources and threat.target not in inc.sources:
            inc.sources.append(threat.target)
        self._add_actions(inc, actions)
        inc.revision += 1
        self.touched.add(key)
        self._pending.add(key)
        return inc

    def key_of(self, threat: Threat) -> IncidentKey:
        """The incident a threat belongs to: its target's, or its destination's for labels grouped so."""
        dst = threat.subjects.get("dst_ip")
        if threat.label in self.cfg.by_destination and dst:
            return ("ip", dst, threat.label)
        return (threat.target_type, threat.target, threat.label)

    def note_actions(self, actions: Iterable[Action], now_ms: int) -> None:
        """List actions not decided for a threat (expiries, unblocks) on the open incidents of their target."""
        for a in actions:
            for key in self._by_target.get((a.target_type, a.target), ()):
                inc = self._open[key]
                self._add_actions(inc, [a])
                inc.revision += 1
                inc.updated_at_ms = now_ms
                self.touched.add(key)
                self._pending.add(key)

    def due(self, now_ms: int, *, close: bool) -> list[Incident]:
        """The incidents whose record should go out now, marked as handed out.

        New ones at once, changed ones at most every `update_every_ms`, and, with `close`, the
        ones quiet for `quiet_ms`, closed and forgotten (the caller sends them, then deletes
        them from its table: a crash in between closes them again).
        """
        cfg = self.cfg
        out = self._closed
        self._closed = []
        if close:
            # Least recently active first (`observe` moves an incident to the end): stop at the first busy one.
            while self._open:
                key, inc = next(iter(self._open.items()))
                if now_ms - inc.last_threat_ms < cfg.quiet_ms:
                    break
                out.append(self._close(key, now_ms, early=False))
        for key in list(self._pending):
            inc = self._open[key]
            if inc.emitted_revision == 0 or now_ms - inc.emitted_at_ms >= cfg.update_every_ms:
                inc.emitted_revision, inc.emitted_at_ms = inc.revision, now_ms
                self.touched.add(key)
                self._pending.discard(key)
                out.append(inc)
        return out

    def _close(self, key: IncidentKey, now_ms: int, *, early: bool) -> Incident:
        inc = self._open.pop(key)
        self._pending.discard(key)
        targets = self._by_target[key[:2]]
        targets.discard(key)
        if not targets:
            del self._by_target[key[:2]]
        inc.status, inc.closed_at_ms, inc.updated_at_ms = "closed", now_ms, now_ms
        inc.revision += 1
        inc.emitted_revision, inc.emitted_at_ms = inc.revision, now_ms
        self.touched.add(key)
        if early:
            self._closed.append(inc)
        return inc

    def _add_actions(self, inc: Incident, actions: Iterable[Action]) -> None:
        for a in actions:
            inc.actions.append({"action_id": a.action_id, "action": a.action, "dry_run": a.dry_run,
                                "degraded": a.degraded, "issued_at_ms": a.issued_at_ms})
        del inc.actions[:-self.cfg.keep_actions]

    def add_restored(self, inc: Incident) -> None:
        """Put back an open incident read from the table; its record goes out again (it may have been lost)."""
        if inc.status != "open":
            return
        inc.emitted_revision = 0
        self._open[inc.key] = inc
        self._pending.add(inc.key)
        self._by_target.setdefault(inc.key[:2], set()).add(inc.key)

    def finish_restore(self) -> None:
        """Order restored incidents by their last threat, as if they had been observed in that order."""
        self._open = OrderedDict(sorted(self._open.items(), key=lambda kv: kv[1].last_threat_ms))
