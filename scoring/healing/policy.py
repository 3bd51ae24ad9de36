"""The healing policy's vocabulary: threats, the policy's configuration, actions, allowlists (rules: `rules`)."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from ..errors import ScoringError
from .rules import BUILTIN, TARGETS, Rule, RuleSet, rules_of

__all__ = ["ACTIONS", "ACTS_ON", "ALERT_DEDUP_MS", "ANY_LABEL", "BENIGN", "BLOCKING", "BREAKER_WINDOW_MS",
           "DEFAULT_RULES", "ISSUED_MEMORY", "MAX_SOURCES", "SNAPSHOT_FORMAT", "TARGETS", "Action", "PolicyConfig",
           "Rule", "RuleSet", "Threat", "in_allowlist", "make_action_id", "parse_ip", "rules_of", "to_ms", "validate"]

ACTIONS: tuple[str, ...] = ("block_ip", "unblock_ip", "rate_limit", "lock_account", "isolate_host", "alert")
MAX_SOURCES = 100  # attacking sources listed on a target-side action
BLOCKING: frozenset[str] = frozenset({"block_ip", "rate_limit", "lock_account", "isolate_host"})
BENIGN = "benign"
ANY_LABEL = "*"  # the rules key used for every label without a rule of its own

ALERT_DEDUP_MS = 60_000
ISSUED_MEMORY = 2_000  # threats whose actions are remembered for redelivery (see `decide`)
BREAKER_WINDOW_MS = 60_000
SNAPSHOT_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Which target type each blocking action can name without risk of hitting the wrong entity.
ACTS_ON = {"block_ip": "ip", "rate_limit": "ip", "isolate_host": "ip", "lock_account": "user"}


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
    event_time_ms: int | None = None  # the event's own time, for incidents
    model_version: str | None = None  # the model version that scored it, for incidents
    # Other entities of the event a rule may act on: "dst_ip" (the destination address), "user".
    subjects: Mapping[str, str] = field(default_factory=dict)


DEFAULT_RULES: Mapping[str, RuleSet] = MappingProxyType(dict(BUILTIN.rules))  # read-only view


def _default_rules() -> dict[str, RuleSet]:
    """A fresh copy of the built-in rules (`default_policy.toml`)."""
    return dict(BUILTIN.rules)


@dataclass(frozen=True)
class PolicyConfig:
    """The healing policy: rules per label, escalation ladder, allowlist and safety switches."""

    version: str = BUILTIN.version
    rules: dict[str, RuleSet] = field(default_factory=_default_rules)
    ttl_ladder_s: tuple[int, ...] = BUILTIN.ttl_ladder_s  # built in: 1st offence 10 min, 2nd 1 h, 3rd+ 24 h
    offence_memory_s: int = BUILTIN.offence_memory_s  # older offences are forgotten for escalation
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
    sources: tuple[str, ...] = ()  # a target-side action: the attacking sources seen (up to MAX_SOURCES)


def to_ms(when: datetime, name: str) -> int:
    """Milliseconds since the Unix epoch, in exact integer arithmetic."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {when!r}")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def make_action_id(*parts: object) -> str:
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


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
    addr = parse_ip(target)
    if addr is None:
        return False
    return any(addr in net for net in nets)


def _validate_ladder(where: str, ladder: object) -> None:
    if not isinstance(ladder, (tuple, list)) or not ladder:
        raise ScoringError(f"{where} must be a non-empty sequence of seconds, got {ladder!r}")
    for i, ttl in enumerate(ladder):
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ScoringError(f"{where}[{i}] must be a positive integer, got {ttl!r}")
    if any(b < a for a, b in zip(ladder, ladder[1:])):
        raise ScoringError(f"{where} must be sorted ascending (repeat offences never get shorter), got {ladder!r}")


def _validate_thresholds(where: str, name: str, thresholds: object) -> None:
    if not isinstance(thresholds, Mapping):
        raise ScoringError(f"{where}.{name} must be a mapping, got {type(thresholds).__name__}")
    for feat, threshold in thresholds.items():
        if not isinstance(feat, str) or not feat:
            raise ScoringError(f"{where}.{name}: feature names must be non-empty strings")
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not math.isfinite(threshold) or threshold < 0):
            raise ScoringError(f"{where}.{name}[{feat!r}] must be a finite number >= 0, got {threshold!r}")


def _validate_rule(label: str, where: str, rule: object) -> None:
    if not isinstance(rule, Rule):
        raise ScoringError(f"{where} must be a Rule, got {type(rule).__name__}")
    if rule.action not in ACTIONS:
        raise ScoringError(f"{where}.action is unknown: {rule.action!r} (expected one of {ACTIONS})")
    if rule.action not in BLOCKING and rule.action != "alert":
        raise ScoringError(f"{where}.action must be a blocking action or 'alert', got {rule.action!r}")
    if label == BENIGN and rule.action != "alert":
        # A benign prediction with high risk is an anomaly, never proof: alert at most.
        raise ScoringError(f"{where}.action must be 'alert', got {rule.action!r}")
    if rule.target not in TARGETS:
        raise ScoringError(f"{where}.target is unknown: {rule.target!r} (expected one of {TARGETS})")
    named = {"destination": "ip", "user": "user"}.get(rule.target)  # a source may be of any entity type
    if rule.action in ACTS_ON and named is not None and ACTS_ON[rule.action] != named:
        # Checked here, not when a threat comes: a rule that can never act is a mistake in the file.
        raise ScoringError(f"{where}: {rule.action} acts on {'a user' if ACTS_ON[rule.action] == 'user' else 'an ip'}"
                           f", not on the {rule.target}")
    if isinstance(rule.min_risk, bool) or not isinstance(rule.min_risk, int) or not 0 <= rule.min_risk <= 100:
        raise ScoringError(f"{where}.min_risk must be an integer in 0..100, got {rule.min_risk!r}")
    _validate_thresholds(where, "min_evidence", rule.min_evidence)
    _validate_thresholds(where, "max_evidence", rule.max_evidence)
    if rule.ttl_ladder_s is not None:
        _validate_ladder(f"{where}.ttl_ladder_s", rule.ttl_ladder_s)


def validate(cfg: PolicyConfig) -> None:
    """Raise ScoringError naming the first bad field of the policy; return None when it is sound."""
    if not isinstance(cfg.version, str) or not cfg.version:
        raise ScoringError(f"version must be a non-empty string, got {cfg.version!r}")
    if not isinstance(cfg.rules, Mapping):
        raise ScoringError(f"rules must be a mapping of label to Rule, got {type(cfg.rules).__name__}")
    for label, found in cfg.rules.items():
        if not isinstance(label, str) or not label:
            raise ScoringError(f"rules[{label!r}]: rule labels must be non-empty strings")
        if isinstance(found, (tuple, list)) and not found:
            raise ScoringError(f"rules[{label!r}] must hold at least one rule")
        for i, rule in enumerate(rules_of(cfg.rules, label)):
            _validate_rule(label, f"rules[{label!r}]" + ("" if isinstance(found, Rule) else f"[{i}]"), rule)
    _validate_ladder("ttl_ladder_s", cfg.ttl_ladder_s)
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

