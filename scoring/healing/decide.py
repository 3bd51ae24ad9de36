"""The healing decisions: a threat to actions (`decide`), expiry (`expire`), an operator's unblock (`release`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .policy import (
    ACTS_ON,
    ALERT_DEDUP_MS,
    ANY_LABEL,
    BENIGN,
    BREAKER_WINDOW_MS,
    MAX_SOURCES,
    Action,
    PolicyConfig,
    Rule,
    RuleSet,
    Threat,
    in_allowlist,
    make_action_id,
    parse_ip,
    rules_of,
    to_ms,
    validate,
)
from .state import Block, HealingState, TargetKey

__all__ = ["decide", "expire", "release"]


def _rules_for(label: str, rules: Mapping[str, RuleSet]) -> tuple[Rule, ...]:
    """The rules of `label`: its own, else the catch-all's; benign never falls back to the catch-all."""
    if label in rules:
        return rules_of(rules, label)
    if label == BENIGN:
        return ()
    return rules_of(rules, ANY_LABEL)


def _fmt(value: float) -> str:
    """A number as an analyst reads it: 12 rather than 12.0."""
    return f"{value:g}"


def _evidence_met(rule: Rule, evidence: Mapping[str, float]) -> tuple[bool, str]:
    """Whether every evidence bound is met, and the sentence fragment naming them."""
    parts = []
    bounds = [(f, t, ">=") for f, t in rule.min_evidence.items()] + [(f, t, "<=") for f, t in rule.max_evidence.items()]
    for feat, threshold, op in sorted(bounds):
        try:
            value = float(evidence[feat])
        except (KeyError, TypeError, ValueError):
            return False, ""
        # NaN compares False, so missing or broken evidence never triggers an action.
        if not (value >= threshold if op == ">=" else value <= threshold):
            return False, ""
        parts.append(f"{feat}={_fmt(value)} ({op} {_fmt(threshold)})")
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
        action_id=make_action_id("alert", target, threat.event_id, cfg.version),
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
    now_ms = to_ms(now, "now")
    state._prune(cfg, now_ms)
    issued = state._issued.get(threat.event_id)
    if issued is not None:
        return list(issued) + _allowlisted_since(issued, state, cfg, now_ms)
    dst = threat.subjects.get("dst_ip")
    if dst and threat.target_type == "ip" and threat.label != BENIGN:
        # Which sources attack which destination: a target-side action lists them (`Action.sources`).
        addr = parse_ip(dst)
        if addr is not None:
            state._note_attack(("ip", str(addr)), threat.target, now_ms)
    actions = _decide(threat, state, cfg, now_ms)
    if actions:
        state._record_issued(threat.event_id, actions)
    return actions


def _allowlisted_since(issued: tuple[Action, ...], state: HealingState, cfg: PolicyConfig,
                       now_ms: int) -> list[Action]:
    """The lifts of blocks among `issued` whose target is allowlisted now (a redelivered threat must not re-block).

    A block still active is lifted now; one lifted already (by `expire`) gets its very lift again.
    """
    lifts: list[Action] = []
    for a in issued:
        if a.action not in ACTS_ON or not in_allowlist(a.target, cfg.allowlist):
            continue
        key = (a.target_type, a.target)
        block = state._active.get(key)
        if block is not None and block.action_id == a.action_id:
            lifts += _lift(state, [(block.expires_ms, key, f"target is now allowlisted: {block.action} lifted "
                                    "early", now_ms)], cfg)
        else:
            lifts += state._issued.get(f"lift:{a.action_id}", ())
    return lifts


def _decide(threat: Threat, state: HealingState, cfg: PolicyConfig, now_ms: int) -> list[Action]:
    """Every rule of the threat's label that is met acts, in the policy's order, each on its own target."""
    actions: list[Action] = []
    for rule in _rules_for(threat.label, cfg.rules):
        actions += _apply_rule(threat, rule, state, cfg, now_ms)
    return actions


def _subject(threat: Threat, rule: Rule) -> tuple[str, str] | None:
    """(target type, target) the rule acts on for this threat; None when the event names no such entity."""
    if rule.target == "source":
        return threat.target_type, threat.target
    value = threat.subjects.get("dst_ip" if rule.target == "destination" else "user")
    if not isinstance(value, str) or not value:
        return None
    return ("ip" if rule.target == "destination" else "user"), value


def _apply_rule(threat: Threat, rule: Rule, state: HealingState, cfg: PolicyConfig, now_ms: int) -> list[Action]:
    """The actions of one rule for one threat (none when it is not met)."""
    subject = _subject(threat, rule)
    if subject is None:
        return []
    target_type, raw_target = subject
    # Never act on an allowlisted address, whatever the target type says it is.
    if in_allowlist(raw_target, cfg.allowlist):
        return []
    if threat.risk < rule.min_risk:
        return []
    met, because = _evidence_met(rule, threat.evidence)
    if not met:
        return []
    what = f"{threat.label} at risk {threat.risk}{because}"
    if rule.target != "source":
        what += f" (from {threat.target_type} {threat.target})"

    addr = parse_ip(raw_target) if target_type == "ip" else None
    # IP targets are keyed by their canonical text, so 2001:DB8::1 and 2001:db8::1 are one host.
    target = str(addr) if addr is not None else raw_target
    view = threat if rule.target == "source" else _retarget(threat, target_type)

    if rule.action == "alert":
        if threat.label == BENIGN:
            why = "anomaly only, alert"
        elif threat.label in cfg.rules:
            why = "alert only"
        else:
            why = "no rule for this label, alert only"
        return _alert(view, target, state, cfg, now_ms, f"{what}; {why}")

    needs = ACTS_ON[rule.action]
    if target_type != needs:
        return _alert(view, target, state, cfg, now_ms,
                      f"{what}; {rule.action} needs a {needs} target, got {target_type} "
                      f"{raw_target!r}: never blocked by name, alert only")
    if needs == "ip" and addr is None:
        return _alert(view, target, state, cfg, now_ms,
                      f"{what}; target {raw_target!r} is not a valid IP address: alert only")

    key = (target_type, target)
    block = state._active.get(key)
    # A dry-run block does not protect anything, so it must not suppress a live one.
    if block is not None and now_ms < block.expires_ms and (cfg.dry_run or not block.dry_run):
        block.hits += 1
        if rule.target == "destination" and threat.target_type == "ip":
            block.note_source(threat.target, MAX_SOURCES)
        return []

    if cfg.paused:
        return _alert(view, target, state, cfg, now_ms,
                      f"{what}; healing paused by operator: {rule.action} not issued, alert only",
                      degraded=True)
    recent = sum(1 for t in state._breaker if t > now_ms - BREAKER_WINDOW_MS)
    if recent + 1 > cfg.max_blocks_per_minute:
        return _alert(view, target, state, cfg, now_ms,
                      f"{what}; circuit breaker open ({recent} blocking actions in the last 60 s, "
                      f"max {cfg.max_blocks_per_minute}): {rule.action} not issued, alert only",
                      degraded=True)

    memory_ms = cfg.offence_memory_s * 1000
    past = state._offences.get(key, ())
    n = 1 + sum(1 for t in past if 0 <= now_ms - t < memory_ms)
    ladder = rule.ttl_ladder_s or cfg.ttl_ladder_s
    ttl_s = ladder[min(n - 1, len(ladder) - 1)]
    expires_ms = now_ms + ttl_s * 1000
    action_id = make_action_id(rule.action, target, threat.event_id, cfg.version)
    sources: tuple[str, ...] = ()
    if rule.target == "destination":
        sources = state.sources_of(key, now_ms)
        if threat.target_type == "ip" and threat.target not in sources:
            sources = (sources + (threat.target,))[-MAX_SOURCES:]

    state._active[key] = Block(
        action_id=action_id, action=rule.action, target_type=target_type, target=target,
        label=threat.label, event_id=threat.event_id, risk=threat.risk, started_ms=now_ms,
        expires_ms=expires_ms, dry_run=cfg.dry_run, policy_version=cfg.version, sources=list(sources),
    )
    state._record_offence(key, now_ms, len(ladder))
    state._breaker.append(now_ms)
    listed = f"; {len(sources)} attacking sources listed" if sources else ""
    return [Action(
        action_id=action_id, action=rule.action, target=target, target_type=target_type,
        reason=f"{what}; offence {n}, {_verb(rule.action)} for {ttl_s} s{listed}", risk=threat.risk, ttl_s=ttl_s,
        expires_at_ms=expires_ms, dry_run=cfg.dry_run, threat_event_ids=(threat.event_id,),
        policy_version=cfg.version, issued_at_ms=now_ms, sources=sources,
    )]


def _verb(action: str) -> str:
    return {"rate_limit": "rate-limited", "lock_account": "locked", "isolate_host": "isolated"}.get(action, "blocked")


def _retarget(threat: Threat, target_type: str) -> Threat:
    """The threat as seen from another target (alerts are de-duplicated per target and label)."""
    return Threat(event_id=threat.event_id, label=threat.label, risk=threat.risk, target_type=target_type,
                  target=threat.target, evidence=threat.evidence, detected_at=threat.detected_at)


def expire(state: HealingState, cfg: PolicyConfig, now: datetime) -> list[Action]:
    """`unblock_ip` for every block expired by `now` or whose target is now allowlisted; removes them."""
    validate(cfg)
    now_ms = to_ms(now, "now")
    state._prune(cfg, now_ms)
    due: list[tuple[int, TargetKey, str, int]] = []
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


def release(state: HealingState, target: str, cfg: PolicyConfig, now: datetime, *,
            by: str = "operator") -> list[Action]:
    """`unblock_ip` for every active block on `target`, lifted now on an operator's request.

    An address is matched in its canonical form: `::FFFF:10.0.0.1`, `::ffff:10.0.0.1` and
    `10.0.0.1` name one host, as do every spelling of an IPv6 address.
    """
    validate(cfg)
    now_ms = to_ms(now, "now")
    addr = parse_ip(target)
    target = str(addr) if addr is not None else target
    due = [(block.expires_ms, key, f"{block.action} lifted early by {by}", now_ms)
           for key, block in state._active.items() if block.target == target]
    if not due:
        # A redelivered request whose lift is done already: the same actions again.
        return list(state._issued.get(f"release:{target}", ()))
    actions = _lift(state, due, cfg)
    state._record_issued(f"release:{target}", actions)
    return actions


def _lift(state: HealingState, due: list[tuple[int, TargetKey, str, int]], cfg: PolicyConfig) -> list[Action]:
    actions = []
    for _, key, why, issued_ms in sorted(due):
        block = state._active.pop(key)
        seen = f"; {block.hits} further threats seen while blocked" if block.hits else ""
        lift = Action(
            # Derived from the block alone, so every replica lifts a block under the same id.
            action_id=make_action_id("unblock_ip", block.target, block.action_id, block.started_ms,
                                 block.policy_version),
            action="unblock_ip", target=block.target, target_type=block.target_type,
            reason=f"{why} ({block.label}, blocked at {block.started_ms} ms){seen}",
            risk=block.risk, ttl_s=0, expires_at_ms=None, dry_run=block.dry_run,
            threat_event_ids=(block.event_id,), policy_version=cfg.version, issued_at_ms=issued_ms,
            sources=tuple(block.sources),
        )
        # Remembered, so a redelivered threat behind the block gets this very lift (`_allowlisted_since`).
        state._record_issued(f"lift:{block.action_id}", (lift,))
        actions.append(lift)
    return actions
