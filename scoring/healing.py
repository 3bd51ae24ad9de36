"""Self-healing policy: decides, per threat, which enforcement actions to emit for its target.

The policy is pure: no I/O, no clock. Time is passed in as timezone-aware datetimes and
written on the wire as integer milliseconds since the Unix epoch; the only mutable thing is
a `HealingState`, which `snapshot()`/`restore()` turn into plain JSON-able data.

Default rules (`DEFAULT_RULES`; evidence thresholds are all met with `>=` from the threat's
window features — repeated evidence, not one high score, is what triggers a block):

| label               | action   | min_risk | min_evidence                      |
|---------------------|----------|----------|-----------------------------------|
| brute_force         | block_ip | 70       | src_failed_logins_10m >= 5        |
| password_spraying   | block_ip | 70       | src_distinct_users_10m >= 5       |
| credential_stuffing | block_ip | 70       | src_failed_logins_10m >= 5        |
| port_scan           | block_ip | 70       | src_distinct_dst_ports_1m >= 10   |
| ddos                | block_ip | 70       | dst_distinct_srcs_1m >= 20        |
| sql_injection       | block_ip | 80       | src_attack_urls_10m >= 2          |
| xss                 | block_ip | 80       | src_attack_urls_10m >= 2          |
| path_traversal      | block_ip | 80       | src_attack_urls_10m >= 2          |
| benign              | alert    | 70       | (anomaly-only high risk; never a block) |
| `*` (any other)     | alert    | 90       | (unknown labels are never blocked)      |

Decision order for one threat (`decide`):

1. a target inside an allowlisted CIDR (IPv4 or IPv6, IPv4-mapped IPv6 included) gets nothing;
2. the label's rule (`benign`, the label itself, else `*`) must be met: risk and all evidence;
3. `alert` rules give one alert per (target, label) per 60 s;
4. a blocking rule acts only on a target it can name safely: `block_ip`, `rate_limit` and
   `isolate_host` on a valid `ip` target, `lock_account` on a `user` target; anything else
   (host names, services, unparsable IPs) gets an alert instead — we never block by name;
5. a target already actively blocked gets nothing (the threat is counted on the block);
6. `paused`, or a full circuit breaker (`max_blocks_per_minute` blocking actions in the
   rolling last 60 s), turns the block into an alert with `degraded=True`;
7. otherwise the n-th block of the target within `offence_memory_s` lasts
   `ttl_ladder_s[min(n - 1, len - 1)]` seconds.

`expire()` lifts every block whose expiry has passed (and, early, every block whose target
has since been allowlisted) with `unblock_ip`, the one undo action of every blocking action;
call it on a timer. A block that expired but was not yet lifted no longer de-duplicates: a
new offence issues a fresh block that supersedes it (so enforcers should upsert per target).
Dry-run policies produce exactly the same actions, flagged `dry_run`; a dry-run block never
suppresses a live one. Blocking actions count towards the circuit breaker, dry run or not.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import ipaddress
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

from .errors import ScoringError

__all__ = [
    "ACTIONS",
    "ANY_LABEL",
    "BENIGN",
    "BLOCKING",
    "DEFAULT_RULES",
    "Action",
    "HealingState",
    "PolicyConfig",
    "Rule",
    "Threat",
    "decide",
    "expire",
    "release",
    "in_allowlist",
    "validate",
]

ACTIONS: tuple[str, ...] = ("block_ip", "unblock_ip", "rate_limit", "lock_account", "isolate_host", "alert")
BLOCKING: frozenset[str] = frozenset({"block_ip", "rate_limit", "lock_account", "isolate_host"})
BENIGN = "benign"
ANY_LABEL = "*"  # the rules key used for every label without a rule of its own

ALERT_DEDUP_MS = 60_000
ISSUED_MEMORY = 2_000  # threats whose actions are remembered for redelivery (see `decide`)
BREAKER_WINDOW_MS = 60_000
_SNAPSHOT_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Which target type each blocking action can name without risk of hitting the wrong entity.
_ACTS_ON = {"block_ip": "ip", "rate_limit": "ip", "isolate_host": "ip", "lock_account": "user"}


@dataclass(frozen=True)
class Threat:
    """What the policy needs from one threat event."""

    event_id: str
    label: str  # predicted attack label, e.g. "brute_force", or "benign"
    risk: int  # 0-100
    target_type: str  # "ip" | "host" | "user" | "service"
    target: str  # the entity value, e.g. "203.0.113.7" or a user name
    evidence: dict[str, float]  # window features of the event
    detected_at: datetime


@dataclass(frozen=True)
class Rule:
    """What to do for one attack label: the action, the minimum risk and the evidence required."""

    action: str  # one of ACTIONS except unblock_ip
    min_risk: int  # act only at or above this risk
    min_evidence: dict[str, float] = field(default_factory=dict)  # ALL must be met (>=)


def _default_rules() -> dict[str, Rule]:
    """A fresh copy of the default SOC rules (see the module docstring)."""
    web = {"src_attack_urls_10m": 2.0}
    return {
        "brute_force": Rule("block_ip", 70, {"src_failed_logins_10m": 5.0}),
        "password_spraying": Rule("block_ip", 70, {"src_distinct_users_10m": 5.0}),
        "credential_stuffing": Rule("block_ip", 70, {"src_failed_logins_10m": 5.0}),
        "port_scan": Rule("block_ip", 70, {"src_distinct_dst_ports_1m": 10.0}),
        # Each bot is blocked, but only while the victim really sees many sources.
        "ddos": Rule("block_ip", 70, {"dst_distinct_srcs_1m": 20.0}),
        "sql_injection": Rule("block_ip", 80, dict(web)),
        "xss": Rule("block_ip", 80, dict(web)),
        "path_traversal": Rule("block_ip", 80, dict(web)),
        BENIGN: Rule("alert", 70),
        ANY_LABEL: Rule("alert", 90),
    }


DEFAULT_RULES: Mapping[str, Rule] = MappingProxyType(_default_rules())  # read-only view


@dataclass(frozen=True)
class PolicyConfig:
    """The healing policy: rules per label, escalation ladder, allowlist and safety switches."""

    version: str = "1"
    rules: dict[str, Rule] = field(default_factory=_default_rules)
    ttl_ladder_s: tuple[int, ...] = (600, 3600, 86400)  # 1st offence 10 min, 2nd 1 h, 3rd+ 24 h
    offence_memory_s: int = 7 * 86400  # older offences are forgotten for escalation
    allowlist: tuple[str, ...] = ()  # CIDRs (IPv4/IPv6) never acted on at all
    dry_run: bool = False
    max_blocks_per_minute: int = 20  # circuit breaker over any rolling 60 s
    paused: bool = False  # operator pause: only alerts are emitted


@dataclass(frozen=True)
class Action:
    """One enforcement action for the enforcer (or, with `dry_run`, for the record only)."""

    action_id: str  # deterministic, first 32 hex chars of a sha256
    action: str
    target: str
    target_type: str
    reason: str
    risk: int
    ttl_s: int  # 0 for alert / unblock
    expires_at_ms: int | None
    dry_run: bool
    threat_event_ids: tuple[str, ...]
    policy_version: str
    issued_at_ms: int
    degraded: bool = False  # True when the circuit breaker or pause turned a block into an alert


@dataclass
class _Block:
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


def _action_dict(a: Action) -> dict:
    d = dict(vars(a))
    d["threat_event_ids"] = list(a.threat_event_ids)
    return d


_Key = tuple[str, str]  # (target_type, target)
_AlertKey = tuple[str, str, str]  # (target_type, target, label)


class HealingState:
    """Per-policy mutable state: active blocks, offence history, alert de-dup and breaker times."""

    def __init__(self) -> None:
        self._active: dict[_Key, _Block] = {}
        self._offences: dict[_Key, list[int]] = {}  # block start times, oldest first
        self._alerts: dict[_AlertKey, int] = {}  # time of the last alert
        self._breaker: list[int] = []  # start times of recent blocking actions
        # The actions of the last threats that caused any, by threat event id, oldest first:
        # a redelivered threat gets the same actions back (see `decide`).
        self._issued: dict[str, tuple[Action, ...]] = {}
        # Min-heaps of (time, key) index the two big maps by age, so forgetting costs
        # O(log n) per entry instead of a scan of every target on every call; they are
        # derived data, rebuilt by restore() and never snapshotted. The offence heap holds
        # one entry per target, at or before its oldest remembered offence.
        self._offence_heap: list[tuple[int, _Key]] = []
        self._alert_heap: list[tuple[int, _AlertKey]] = []

    def snapshot(self) -> dict:
        """The state as plain JSON-able data, sorted so equal states give equal snapshots."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "active": [dict(vars(self._active[k])) for k in sorted(self._active)],
            "offences": [[k[0], k[1], list(v)] for k, v in sorted(self._offences.items())],
            "alerts": [[k[0], k[1], k[2], t] for k, t in sorted(self._alerts.items())],
            "breaker": sorted(self._breaker),
            "issued": [[event_id, [_action_dict(a) for a in actions]] for event_id, actions in self._issued.items()],
        }

    def _record_issued(self, event_id: str, actions: Sequence[Action]) -> None:
        self._issued[event_id] = tuple(actions)
        while len(self._issued) > ISSUED_MEMORY:
            del self._issued[next(iter(self._issued))]

    @classmethod
    def restore(cls, data: dict) -> HealingState:
        """A state from `snapshot()` data; raises ScoringError when the data are malformed."""
        state = cls()
        try:
            if data.get("format") != _SNAPSHOT_FORMAT:
                raise ValueError(f"format must be {_SNAPSHOT_FORMAT}, got {data.get('format')!r}")
            for b in data["active"]:
                block = _Block(**b)
                state._active[(block.target_type, block.target)] = block
            for ttype, target, times in data["offences"]:
                state._offences[(str(ttype), str(target))] = sorted(int(t) for t in times)
            for ttype, target, label, t in data["alerts"]:
                state._alerts[(str(ttype), str(target), str(label))] = int(t)
            state._breaker = sorted(int(t) for t in data["breaker"])
            for event_id, actions in data.get("issued", ()):  # absent in snapshots before it existed
                state._issued[str(event_id)] = tuple(
                    Action(**{**a, "threat_event_ids": tuple(a["threat_event_ids"])}) for a in actions)
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
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HealingState):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"HealingState({', '.join(f'{k}={v}' for k, v in self.sizes().items())})"

    def _record_offence(self, key: _Key, now_ms: int, keep: int) -> None:
        """Remember a block of `key`; only the latest `keep` can change an escalation step."""
        times = self._offences.get(key)
        if times is None:
            heapq.heappush(self._offence_heap, (now_ms, key))
            times = []
        self._offences[key] = sorted(times + [now_ms])[-keep:]

    def _record_alert(self, key: _AlertKey, now_ms: int) -> None:
        """Remember an alert for de-duplication."""
        self._alerts[key] = now_ms
        heapq.heappush(self._alert_heap, (now_ms, key))

    def _prune(self, cfg: PolicyConfig, now_ms: int) -> None:
        """Forget what no decision can use any more: old offences, alerts and breaker times."""
        self._breaker = [t for t in self._breaker if t > now_ms - BREAKER_WINDOW_MS]
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


def _ms(when: datetime, name: str) -> int:
    """Milliseconds since the Unix epoch, in exact integer arithmetic."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {when!r}")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _action_id(*parts: object) -> str:
    """First 32 hex chars of a sha256 over the parts, JSON-encoded so no two part lists collide."""
    blob = json.dumps([str(p) for p in parts], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


@functools.lru_cache(maxsize=64)
def _networks(allowlist: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The allowlist parsed once per distinct tuple; host bits set are rejected, not guessed."""
    nets = []
    for i, cidr in enumerate(allowlist):
        try:
            nets.append(ipaddress.ip_network(str(cidr).strip(), strict=True))
        except ValueError as exc:
            raise ScoringError(f"allowlist[{i}] is not a valid CIDR: {cidr!r} ({exc})") from exc
    return tuple(nets)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `value`, IPv4-mapped IPv6 unwrapped to IPv4; None when it is no address."""
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    # ::ffff:a.b.c.d is the IPv4 host a.b.c.d seen through a dual-stack socket.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_allowlist(target: str, allowlist: Sequence[str]) -> bool:
    """Whether `target` is an IP address inside any allowlisted CIDR; non-addresses are not."""
    if isinstance(allowlist, str):
        allowlist = (allowlist,)
    nets = _networks(tuple(allowlist))
    addr = _parse_ip(target)
    if addr is None:
        return False
    return any(addr in net for net in nets)


def validate(cfg: PolicyConfig) -> None:
    """Raise ScoringError naming the first bad field of the policy; return None when it is sound."""
    if not isinstance(cfg.version, str) or not cfg.version:
        raise ScoringError(f"version must be a non-empty string, got {cfg.version!r}")
    if not isinstance(cfg.rules, Mapping):
        raise ScoringError(f"rules must be a mapping of label to Rule, got {type(cfg.rules).__name__}")
    for label, rule in cfg.rules.items():
        where = f"rules[{label!r}]"
        if not isinstance(label, str) or not label:
            raise ScoringError(f"{where}: rule labels must be non-empty strings")
        if not isinstance(rule, Rule):
            raise ScoringError(f"{where} must be a Rule, got {type(rule).__name__}")
        if rule.action not in ACTIONS:
            raise ScoringError(f"{where}.action is unknown: {rule.action!r} (expected one of {ACTIONS})")
        if rule.action not in BLOCKING and rule.action != "alert":
            raise ScoringError(f"{where}.action must be a blocking action or 'alert', got {rule.action!r}")
        if label == BENIGN and rule.action != "alert":
            # A benign prediction with high risk is an anomaly, never proof: alert at most.
            raise ScoringError(f"{where}.action must be 'alert', got {rule.action!r}")
        if isinstance(rule.min_risk, bool) or not isinstance(rule.min_risk, int) or not 0 <= rule.min_risk <= 100:
            raise ScoringError(f"{where}.min_risk must be an integer in 0..100, got {rule.min_risk!r}")
        if not isinstance(rule.min_evidence, Mapping):
            raise ScoringError(f"{where}.min_evidence must be a mapping, got {type(rule.min_evidence).__name__}")
        for feat, threshold in rule.min_evidence.items():
            if not isinstance(feat, str) or not feat:
                raise ScoringError(f"{where}.min_evidence: feature names must be non-empty strings")
            if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                    or not math.isfinite(threshold) or threshold < 0):
                raise ScoringError(f"{where}.min_evidence[{feat!r}] must be a finite number >= 0, got {threshold!r}")
    ladder = cfg.ttl_ladder_s
    if not isinstance(ladder, (tuple, list)) or not ladder:
        raise ScoringError(f"ttl_ladder_s must be a non-empty sequence of seconds, got {ladder!r}")
    for i, ttl in enumerate(ladder):
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ScoringError(f"ttl_ladder_s[{i}] must be a positive integer, got {ttl!r}")
    if any(b < a for a, b in zip(ladder, ladder[1:])):
        raise ScoringError(f"ttl_ladder_s must be sorted ascending (repeat offences never get shorter), got {ladder!r}")
    for name in ("offence_memory_s", "max_blocks_per_minute"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScoringError(f"{name} must be an integer >= 0, got {value!r}")
    if isinstance(cfg.allowlist, str) or not isinstance(cfg.allowlist, (tuple, list)):
        raise ScoringError(f"allowlist must be a sequence of CIDR strings, got {cfg.allowlist!r}")
    _networks(tuple(cfg.allowlist))
    for name in ("dry_run", "paused"):
        if not isinstance(getattr(cfg, name), bool):
            raise ScoringError(f"{name} must be a bool, got {getattr(cfg, name)!r}")


def _rule_for(label: str, rules: Mapping[str, Rule]) -> Rule | None:
    """The rule of `label`: its own, else the catch-all; benign never falls back to the catch-all."""
    if label in rules:
        return rules[label]
    if label == BENIGN:
        return None
    return rules.get(ANY_LABEL)


def _fmt(value: float) -> str:
    """A number as an analyst reads it: 12 rather than 12.0."""
    return f"{value:g}"


def _evidence_met(rule: Rule, evidence: Mapping[str, float]) -> tuple[bool, str]:
    """Whether every evidence threshold is met, and the sentence fragment naming them."""
    parts = []
    for feat in sorted(rule.min_evidence):
        threshold = rule.min_evidence[feat]
        try:
            value = float(evidence[feat])
        except (KeyError, TypeError, ValueError):
            return False, ""
        # NaN compares False, so missing or broken evidence never triggers an action.
        if not value >= threshold:
            return False, ""
        parts.append(f"{feat}={_fmt(value)} (>= {_fmt(threshold)})")
    return True, (" with " + ", ".join(parts)) if parts else ""


def _alert(threat: Threat, target: str, state: HealingState, cfg: PolicyConfig, now_ms: int,
           reason: str, *, degraded: bool = False) -> list[Action]:
    """One alert, unless the same (target, label) was alerted in the last 60 s."""
    key = (threat.target_type, target, threat.label)
    last = state._alerts.get(key)
    if last is not None and 0 <= now_ms - last < ALERT_DEDUP_MS:
        return []
    state._record_alert(key, now_ms)
    return [Action(
        action_id=_action_id("alert", target, threat.event_id, cfg.version),
        action="alert", target=target, target_type=threat.target_type, reason=reason,
        risk=threat.risk, ttl_s=0, expires_at_ms=None, dry_run=cfg.dry_run,
        threat_event_ids=(threat.event_id,), policy_version=cfg.version,
        issued_at_ms=now_ms, degraded=degraded,
    )]


def decide(threat: Threat, state: HealingState, cfg: PolicyConfig, now: datetime) -> list[Action]:
    """The actions for one threat under the policy at `now`; updates `state` accordingly.

    A threat decided before (a redelivery after a crash) gets the very same actions again,
    so an action id never stands for two different contents.
    """
    validate(cfg)
    now_ms = _ms(now, "now")
    state._prune(cfg, now_ms)
    issued = state._issued.get(threat.event_id)
    if issued is not None:
        return list(issued)
    actions = _decide(threat, state, cfg, now_ms)
    if actions:
        state._record_issued(threat.event_id, actions)
    return actions


def _decide(threat: Threat, state: HealingState, cfg: PolicyConfig, now_ms: int) -> list[Action]:

    # Never act on an allowlisted address, whatever the target type says it is.
    if in_allowlist(threat.target, cfg.allowlist):
        return []
    rule = _rule_for(threat.label, cfg.rules)
    if rule is None or threat.risk < rule.min_risk:
        return []
    met, because = _evidence_met(rule, threat.evidence)
    if not met:
        return []
    what = f"{threat.label} at risk {threat.risk}{because}"

    addr = _parse_ip(threat.target) if threat.target_type == "ip" else None
    # IP targets are keyed by their canonical text, so 2001:DB8::1 and 2001:db8::1 are one host.
    target = str(addr) if addr is not None else threat.target

    if rule.action == "alert":
        if threat.label == BENIGN:
            why = "anomaly only, alert"
        elif threat.label in cfg.rules:
            why = "alert only"
        else:
            why = "no rule for this label, alert only"
        return _alert(threat, target, state, cfg, now_ms, f"{what}; {why}")

    needs = _ACTS_ON[rule.action]
    if threat.target_type != needs:
        return _alert(threat, target, state, cfg, now_ms,
                      f"{what}; {rule.action} needs a {needs} target, got {threat.target_type} "
                      f"{threat.target!r}: never blocked by name, alert only")
    if needs == "ip" and addr is None:
        return _alert(threat, target, state, cfg, now_ms,
                      f"{what}; target {threat.target!r} is not a valid IP address: alert only")

    key = (threat.target_type, target)
    block = state._active.get(key)
    # A dry-run block does not protect anything, so it must not suppress a live one.
    if block is not None and now_ms < block.expires_ms and (cfg.dry_run or not block.dry_run):
        block.hits += 1
        return []

    if cfg.paused:
        return _alert(threat, target, state, cfg, now_ms,
                      f"{what}; healing paused by operator: {rule.action} not issued, alert only",
                      degraded=True)
    recent = sum(1 for t in state._breaker if t > now_ms - BREAKER_WINDOW_MS)
    if recent + 1 > cfg.max_blocks_per_minute:
        return _alert(threat, target, state, cfg, now_ms,
                      f"{what}; circuit breaker open ({recent} blocking actions in the last 60 s, "
                      f"max {cfg.max_blocks_per_minute}): {rule.action} not issued, alert only",
                      degraded=True)

    memory_ms = cfg.offence_memory_s * 1000
    past = state._offences.get(key, ())
    n = 1 + sum(1 for t in past if 0 <= now_ms - t < memory_ms)
    ladder = cfg.ttl_ladder_s
    ttl_s = ladder[min(n - 1, len(ladder) - 1)]
    expires_ms = now_ms + ttl_s * 1000
    action_id = _action_id(rule.action, target, threat.event_id, cfg.version)

    state._active[key] = _Block(
        action_id=action_id, action=rule.action, target_type=threat.target_type, target=target,
        label=threat.label, event_id=threat.event_id, risk=threat.risk, started_ms=now_ms,
        expires_ms=expires_ms, dry_run=cfg.dry_run, policy_version=cfg.version,
    )
    state._record_offence(key, now_ms, len(ladder))
    state._breaker.append(now_ms)
    return [Action(
        action_id=action_id, action=rule.action, target=target, target_type=threat.target_type,
        reason=f"{what}; offence {n}, blocked for {ttl_s} s", risk=threat.risk, ttl_s=ttl_s,
        expires_at_ms=expires_ms, dry_run=cfg.dry_run, threat_event_ids=(threat.event_id,),
        policy_version=cfg.version, issued_at_ms=now_ms,
    )]


def expire(state: HealingState, cfg: PolicyConfig, now: datetime) -> list[Action]:
    """`unblock_ip` for every block expired by `now` or whose target is now allowlisted; removes them."""
    validate(cfg)
    now_ms = _ms(now, "now")
    state._prune(cfg, now_ms)
    due: list[tuple[int, _Key, str, int]] = []
    for key, block in state._active.items():
        if block.expires_ms <= now_ms:
            # Issued "at" the expiry, not at the timer's tick: lifting it again after a crash
            # gives the same action.
            due.append((block.expires_ms, key, f"{block.action} expired after "
                        f"{(block.expires_ms - block.started_ms) // 1000} s", block.expires_ms))
        elif in_allowlist(block.target, cfg.allowlist):
            # The operator vouched for this address after it was blocked: lift it now.
            due.append((block.expires_ms, key, f"target is now allowlisted: {block.action} lifted early", now_ms))
    return _lift(state, due, cfg)


def release(state: HealingState, target: str, cfg: PolicyConfig, now: datetime, *, by: str = "operator") -> list[Action]:
    """`unblock_ip` for every active block on `target`, lifted now on an operator's request."""
    validate(cfg)
    now_ms = _ms(now, "now")
    due = [(block.expires_ms, key, f"{block.action} lifted early by {by}", now_ms)
           for key, block in state._active.items() if block.target == target]
    if not due:
        # A redelivered request whose lift is done already: the same actions again.
        return list(state._issued.get(f"release:{target}", ()))
    actions = _lift(state, due, cfg)
    state._record_issued(f"release:{target}", actions)
    return actions


def _lift(state: HealingState, due: list[tuple[int, _Key, str, int]], cfg: PolicyConfig) -> list[Action]:
    actions = []
    for _, key, why, issued_ms in sorted(due):
        block = state._active.pop(key)
        seen = f"; {block.hits} further threats seen while blocked" if block.hits else ""
        actions.append(Action(
            # Derived from the block alone, so every replica lifts a block under the same id.
            action_id=_action_id("unblock_ip", block.target, block.action_id, block.started_ms,
                                 block.policy_version),
            action="unblock_ip", target=block.target, target_type=block.target_type,
            reason=f"{why} ({block.label}, blocked at {block.started_ms} ms){seen}",
            risk=block.risk, ttl_s=0, expires_at_ms=None, dry_run=block.dry_run,
            threat_event_ids=(block.event_id,), policy_version=cfg.version, issued_at_ms=issued_ms,
        ))
    return actions
