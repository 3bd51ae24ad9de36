"""The self-healing policy: thresholds, escalation, allowlist, safety switches, determinism, bounds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scoring.errors import ScoringError
from scoring.healing import (
    ACTIONS,
    BLOCKING,
    DEFAULT_RULES,
    Action,
    HealingState,
    PolicyConfig,
    Rule,
    Threat,
    decide,
    expire,
    in_allowlist,
    release,
    rules_of,
    validate,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ATTACKER = "203.0.113.7"
BRUTE = {"src_failed_logins_10m": 12.0}


def threat(target: str = ATTACKER, *, label: str = "brute_force", risk: int = 96,
           evidence: dict[str, float] | None = None, target_type: str = "ip",
           event_id: str | None = None, at: datetime = T0) -> Threat:
    return Threat(
        event_id=event_id or f"ev-{label}-{target}-{int(at.timestamp() * 1000)}",
        label=label, risk=risk, target_type=target_type, target=target,
        evidence=dict(BRUTE if evidence is None else evidence), detected_at=at,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# --- thresholds -----------------------------------------------------------------------------

def test_brute_force_below_evidence_threshold_gives_nothing() -> None:
    """One high score without repeated evidence never blocks."""
    state = HealingState()
    assert decide(threat(evidence={"src_failed_logins_10m": 4.0}), state, PolicyConfig(), T0) == []
    assert decide(threat(evidence={}), state, PolicyConfig(), T0) == []
    assert decide(threat(evidence={"src_failed_logins_10m": float("nan")}), state, PolicyConfig(), T0) == []


def test_brute_force_below_min_risk_gives_nothing() -> None:
    assert decide(threat(risk=69), HealingState(), PolicyConfig(), T0) == []


def test_brute_force_with_evidence_blocks_for_ten_minutes() -> None:
    """The first offence is one block_ip of 600 s whose fields say why and until when."""
    [a] = decide(threat(), HealingState(), PolicyConfig(), T0)
    assert a.action == "block_ip" and a.target == ATTACKER and a.target_type == "ip"
    assert a.ttl_s == 600
    assert a.issued_at_ms == ms(T0) and a.expires_at_ms == ms(T0) + 600_000
    assert not a.dry_run and not a.degraded
    assert a.policy_version == "2" and a.risk == 96
    assert a.threat_event_ids == (threat().event_id,)
    assert len(a.action_id) == 32 and int(a.action_id, 16) >= 0
    assert a.reason == "brute_force at risk 96 with src_failed_logins_10m=12 (>= 5); offence 1, blocked for 600 s"


@pytest.mark.parametrize(("label", "feature", "value"), [
    ("password_spraying", "src_distinct_users_10m", 5.0),
    ("credential_stuffing", "src_failed_logins_10m", 5.0),
    ("port_scan", "src_distinct_dst_ports_1m", 10.0),
    ("sql_injection", "src_attack_urls_10m", 2.0),
    ("xss", "src_attack_urls_10m", 2.0),
    ("path_traversal", "src_attack_urls_10m", 2.0),
])
def test_default_rules_block_exactly_at_their_evidence_threshold(label: str, feature: str, value: float) -> None:
    cfg = PolicyConfig()
    below = decide(threat(label=label, evidence={feature: value - 1}), HealingState(), cfg, T0)
    assert below == []
    [a] = decide(threat(label=label, evidence={feature: value}), HealingState(), cfg, T0)
    assert a.action == "block_ip"


def test_web_attacks_need_risk_80() -> None:
    ev = {"src_attack_urls_10m": 3.0}
    assert decide(threat(label="sql_injection", risk=79, evidence=ev), HealingState(), PolicyConfig(), T0) == []
    assert len(decide(threat(label="sql_injection", risk=80, evidence=ev), HealingState(), PolicyConfig(), T0)) == 1


def test_benign_at_high_risk_alerts_and_never_blocks() -> None:
    """Anomaly-only high risk is worth a look, not a block, whatever the evidence."""
    cfg = PolicyConfig()
    assert decide(threat(label="benign", risk=69), HealingState(), cfg, T0) == []
    [a] = decide(threat(label="benign", risk=100), HealingState(), cfg, T0)
    assert a.action == "alert" and a.ttl_s == 0 and a.expires_at_ms is None and not a.degraded
    # A benign label never falls back to the catch-all rule, even when the operator removed its own.
    rules = {k: v for k, v in DEFAULT_RULES.items() if k != "benign"}
    rules["*"] = Rule("block_ip", 0)
    assert decide(threat(label="benign", risk=100), HealingState(), PolicyConfig(rules=rules), T0) == []


def test_unknown_attack_label_alerts_at_90_only() -> None:
    assert decide(threat(label="exfiltration", risk=89), HealingState(), PolicyConfig(), T0) == []
    [a] = decide(threat(label="exfiltration", risk=90), HealingState(), PolicyConfig(), T0)
    assert a.action == "alert" and "no rule" in a.reason


@pytest.mark.parametrize("target_type,target", [("host", "web-01"), ("user", "alice"), ("service", "sshd")])
def test_non_ip_target_gets_an_alert_not_a_block(target_type: str, target: str) -> None:
    """We never block by host name, user or service."""
    state = HealingState()
    [a] = decide(threat(target, target_type=target_type), state, PolicyConfig(), T0)
    assert a.action == "alert" and a.target == target and a.target_type == target_type
    assert not a.degraded
    assert state.snapshot()["active"] == [] and state.snapshot()["breaker"] == []


def test_invalid_ip_target_is_alerted_not_blocked() -> None:
    [a] = decide(threat("not-an-ip"), HealingState(), PolicyConfig(), T0)
    assert a.action == "alert" and "not a valid IP" in a.reason
    [a] = decide(threat("010.1.2.3"), HealingState(), PolicyConfig(), T0)  # ambiguous octal
    assert a.action == "alert"


def test_lock_account_applies_to_users_only() -> None:
    rules = dict(DEFAULT_RULES, brute_force=Rule("lock_account", 70, {"src_failed_logins_10m": 5}))
    cfg = PolicyConfig(rules=rules)
    [a] = decide(threat("alice", target_type="user"), HealingState(), cfg, T0)
    assert a.action == "lock_account" and a.ttl_s == 600
    [a] = decide(threat(ATTACKER), HealingState(), cfg, T0)
    assert a.action == "alert"


# --- de-duplication, expiry and escalation ---------------------------------------------------

def test_second_threat_while_blocked_gives_nothing() -> None:
    state, cfg = HealingState(), PolicyConfig()
    assert len(decide(threat(at=at(0)), state, cfg, at(0))) == 1
    for s in (1, 60, 599):
        assert decide(threat(at=at(s)), state, cfg, at(s)) == []
    assert state.snapshot()["active"][0]["hits"] == 3


def test_ip_targets_are_deduplicated_in_canonical_form() -> None:
    state, cfg = HealingState(), PolicyConfig()
    [a] = decide(threat("2001:DB8::1"), state, cfg, T0)
    assert a.target == "2001:db8::1"
    assert decide(threat("2001:db8:0::1"), state, cfg, at(1)) == []
    [b] = decide(threat("::ffff:198.51.100.9"), state, cfg, at(2))
    assert b.target == "198.51.100.9"
    assert decide(threat("198.51.100.9"), state, cfg, at(3)) == []


def test_expire_unblocks_once_after_expiry_and_keeps_offence_history() -> None:
    state, cfg = HealingState(), PolicyConfig()
    [block] = decide(threat(), state, cfg, T0)
    assert expire(state, cfg, at(599)) == []
    [u] = expire(state, cfg, at(600))
    assert u.action == "unblock_ip" and u.target == ATTACKER and u.ttl_s == 0 and u.expires_at_ms is None
    assert u.threat_event_ids == block.threat_event_ids and u.issued_at_ms == ms(at(600))
    assert u.action_id != block.action_id and len(u.action_id) == 32
    assert expire(state, cfg, at(700)) == []
    snap = state.snapshot()
    assert snap["active"] == [] and snap["offences"] == [["ip", ATTACKER, [ms(T0)]]]


def test_unblock_id_depends_only_on_the_block() -> None:
    """Two replicas holding the same block lift it under the same id, whenever they expire it."""
    s1, s2, cfg = HealingState(), HealingState(), PolicyConfig()
    decide(threat(), s1, cfg, T0)
    decide(threat(), s2, cfg, T0)
    [u1] = expire(s1, cfg, at(600))
    [u2] = expire(s2, cfg, at(900))
    assert u1.action_id == u2.action_id


def test_re_offences_escalate_along_the_ladder() -> None:
    state, cfg = HealingState(), PolicyConfig()
    now, ttls = T0, []
    for _ in range(4):
        [a] = decide(threat(at=now), state, cfg, now)
        ttls.append(a.ttl_s)
        now += timedelta(seconds=a.ttl_s)
        [u] = expire(state, cfg, now)
        assert u.action == "unblock_ip"
        now += timedelta(seconds=100)
    assert ttls == [600, 3600, 86400, 86400]
    assert "offence 4" in a.reason


def test_offences_older_than_memory_are_forgotten() -> None:
    state, cfg = HealingState(), PolicyConfig(offence_memory_s=3600)
    decide(threat(), state, cfg, T0)
    expire(state, cfg, at(600))
    [a] = decide(threat(at=at(3599)), state, cfg, at(3599))
    assert a.ttl_s == 3600
    expire(state, cfg, at(3599 + 3600))
    [b] = decide(threat(at=at(3 * 3600 + 3599)), state, cfg, at(3 * 3600 + 3599))
    assert b.ttl_s == 600


def test_alerts_are_deduplicated_per_target_and_label_for_60_s() -> None:
    state, cfg = HealingState(), PolicyConfig()
    b = dict(label="benign", risk=95)
    assert len(decide(threat(**b, at=at(0)), state, cfg, at(0))) == 1
    assert decide(threat(**b, at=at(30)), state, cfg, at(30)) == []
    assert decide(threat(**b, at=at(59.999)), state, cfg, at(59.999)) == []
    # Another label or another target is another alert.
    assert len(decide(threat(label="exfiltration", risk=95, at=at(31)), state, cfg, at(31))) == 1
    assert len(decide(threat("198.51.100.1", **b, at=at(32)), state, cfg, at(32))) == 1
    assert len(decide(threat(**b, at=at(60)), state, cfg, at(60))) == 1


# --- allowlist --------------------------------------------------------------------------------

def test_allowlisted_attacker_never_gets_any_action() -> None:
    cfg = PolicyConfig(allowlist=("10.0.0.0/8",))
    state = HealingState()
    for i, (label, risk) in enumerate([("brute_force", 100), ("benign", 100), ("exfiltration", 100)]):
        assert decide(threat("10.1.2.3", label=label, risk=risk, at=at(i)), state, cfg, at(i)) == []
    # Even as a host target or through a dual-stack socket.
    assert decide(threat("10.1.2.3", target_type="host"), state, cfg, at(5)) == []
    assert decide(threat("::ffff:10.1.2.3"), state, cfg, at(6)) == []
    assert expire(state, cfg, at(10_000)) == []
    assert state.snapshot()["active"] == [] and state.snapshot()["alerts"] == []
    # The neighbour outside the allowlist is still blocked.
    assert [a.action for a in decide(threat("11.1.2.3"), state, cfg, at(7))] == ["block_ip"]


def test_ipv6_allowlist() -> None:
    cfg = PolicyConfig(allowlist=("2001:db8:abcd::/48", "192.0.2.10"))
    state = HealingState()
    assert decide(threat("2001:db8:abcd:12::7"), state, cfg, T0) == []
    assert decide(threat("2001:DB8:ABCD::1"), state, cfg, T0) == []
    assert decide(threat("192.0.2.10"), state, cfg, T0) == []
    assert len(decide(threat("2001:db8:abce::1"), state, cfg, T0)) == 1


def test_in_allowlist() -> None:
    assert in_allowlist("10.1.2.3", ["10.0.0.0/8"])
    assert not in_allowlist("11.1.2.3", ["10.0.0.0/8"])
    assert in_allowlist("fe80::1%eth0", ["fe80::/10"])
    assert not in_allowlist("10.1.2.3", ["::/0"])
    assert not in_allowlist("alice", ["0.0.0.0/0"])
    assert not in_allowlist("10.1.2.3", [])
    with pytest.raises(ScoringError, match="allowlist"):
        in_allowlist("10.1.2.3", ["10.0.0.0/33"])


def test_newly_allowlisted_target_is_lifted_early_by_expire() -> None:
    state = HealingState()
    decide(threat("10.1.2.3"), state, PolicyConfig(), T0)
    [u] = expire(state, PolicyConfig(allowlist=("10.0.0.0/8",)), at(10))
    assert u.action == "unblock_ip" and u.target == "10.1.2.3" and "allowlisted" in u.reason
    assert state.snapshot()["active"] == []


# --- safety switches --------------------------------------------------------------------------

def test_dry_run_produces_the_same_actions_flagged_dry_run() -> None:
    live, dry = PolicyConfig(), PolicyConfig(dry_run=True)
    s_live, s_dry = HealingState(), HealingState()
    script = [(threat(at=at(0)), at(0)), (threat(at=at(10)), at(10)), (threat(label="benign", risk=99, at=at(20)), at(20)),
              (threat("web-01", target_type="host"), at(30)), (threat(at=at(700)), at(700))]
    got_live, got_dry = [], []
    for t, now in script:
        got_live += expire(s_live, live, now) + decide(t, s_live, live, now)
        got_dry += expire(s_dry, dry, now) + decide(t, s_dry, dry, now)
    assert [a.action for a in got_dry] == ["block_ip", "alert", "alert", "unblock_ip", "block_ip"]
    assert all(a.dry_run for a in got_dry)
    assert got_dry == [replace(a, dry_run=True) for a in got_live]
    assert got_dry[-1].ttl_s == 3600  # dry-run blocks count for escalation


def test_dry_run_block_does_not_suppress_a_live_block() -> None:
    state = HealingState()
    [d] = decide(threat(at=at(0)), state, PolicyConfig(dry_run=True), at(0))
    [a] = decide(threat(at=at(5)), state, PolicyConfig(), at(5))
    assert d.dry_run and not a.dry_run and a.action == "block_ip"
    assert decide(threat(at=at(6)), state, PolicyConfig(dry_run=True), at(6)) == []


def test_circuit_breaker_degrades_to_alerts_then_closes() -> None:
    """30 attackers in 10 s with max 20: 20 blocks, then degraded alerts; a minute later, blocks again."""
    state, cfg = HealingState(), PolicyConfig(max_blocks_per_minute=20)
    out = []
    for i in range(30):
        now = at(i / 3)
        out += decide(threat(f"198.51.100.{i + 1}", at=now), state, cfg, now)
    assert len(out) == 30
    assert [a.action for a in out[:20]] == ["block_ip"] * 20
    assert all(a.action == "alert" and a.degraded for a in out[20:])
    assert all("circuit breaker open" in a.reason for a in out[20:])
    assert not any(a.degraded for a in out[:20])
    assert len(state.snapshot()["active"]) == 20
    # Still open 59 s after the first block, closed once the first blocks left the window.
    assert decide(threat("198.51.100.200", at=at(59)), state, cfg, at(59))[0].action == "alert"
    [a] = decide(threat("198.51.100.25", at=at(70)), state, cfg, at(70))
    assert a.action == "block_ip" and not a.degraded


def test_breaker_of_zero_never_blocks() -> None:
    [a] = decide(threat(), HealingState(), PolicyConfig(max_blocks_per_minute=0), T0)
    assert a.action == "alert" and a.degraded


def test_paused_emits_alerts_only() -> None:
    state, cfg = HealingState(), PolicyConfig(paused=True)
    out = []
    for i in range(5):
        out += decide(threat(f"198.51.100.{i + 1}", at=at(i)), state, cfg, at(i))
    out += decide(threat(label="benign", risk=99, target="198.51.100.99"), state, cfg, at(6))
    assert [a.action for a in out] == ["alert"] * 6
    assert all(a.degraded for a in out[:5]) and not out[5].degraded
    assert all("paused" in a.reason for a in out[:5])
    assert state.snapshot()["active"] == [] and state.snapshot()["offences"] == []


def test_degraded_alerts_are_deduplicated_too() -> None:
    state, cfg = HealingState(), PolicyConfig(paused=True)
    assert len(decide(threat(at=at(0)), state, cfg, at(0))) == 1
    assert decide(threat(at=at(1)), state, cfg, at(1)) == []


# --- determinism and persistence ---------------------------------------------------------------

def _script() -> list[tuple[Threat, datetime]]:
    """A mixed sequence of threats: blocks, repeats, re-offences, alerts, non-ip targets."""
    out = []
    for i in range(200):
        now = at(i * 37)
        target = f"198.51.100.{i % 7 + 1}"
        label = ("brute_force", "port_scan", "benign", "exfiltration", "ddos")[i % 5]
        ev = {"src_failed_logins_10m": 9.0, "src_distinct_dst_ports_1m": 30.0, "dst_distinct_srcs_1m": 50.0}
        target_type = "user" if i % 11 == 0 else "ip"
        out.append((threat(target, label=label, risk=70 + i % 31, evidence=ev, target_type=target_type,
                           event_id=f"ev-{i}", at=now), now))
    return out


def _run(state: HealingState, cfg: PolicyConfig, script: list[tuple[Threat, datetime]]) -> list[Action]:
    out: list[Action] = []
    for t, now in script:
        out += expire(state, cfg, now)
        out += decide(t, state, cfg, now)
    return out


def test_same_threat_from_same_state_gives_identical_actions() -> None:
    state, cfg = HealingState(), PolicyConfig()
    _run(state, cfg, _script()[:50])
    t = threat("192.0.2.77", event_id="ev-x", at=at(5000))
    first = decide(t, HealingState.restore(state.snapshot()), cfg, at(5000))
    second = decide(t, HealingState.restore(state.snapshot()), cfg, at(5000))
    assert first and first == second
    # A different event or policy version is a different action.
    other = decide(replace(t, event_id="ev-y"), HealingState.restore(state.snapshot()), cfg, at(5000))
    bumped = decide(t, HealingState.restore(state.snapshot()), replace(cfg, version="bumped"), at(5000))
    assert len({first[0].action_id, other[0].action_id, bumped[0].action_id}) == 3


@pytest.mark.parametrize("label", ["brute_force", "benign"])
def test_a_redelivered_threat_gets_the_same_actions_again(label: str) -> None:
    # A crash between the policy state write and the offset commit redelivers the threat,
    # possibly minutes later: the action id must not come back with another content.
    state, cfg = HealingState(), PolicyConfig()
    t = threat(label=label, risk=99, event_id="ev-once")
    first = decide(t, state, cfg, at(0))
    assert first and first[0].action == ("block_ip" if label == "brute_force" else "alert")
    restored = HealingState.restore(json.loads(json.dumps(state.snapshot())))
    assert decide(t, restored, cfg, at(75)) == first  # past the 60-s alert de-dup, still the same
    assert decide(t, state, cfg, at(75)) == first
    # Another threat against the same target is judged afresh (blocked already: nothing).
    later = decide(threat(label=label, risk=99, event_id="ev-twice"), state, cfg, at(75))
    assert later == ([] if label == "brute_force" else [replace(first[0], action_id=later[0].action_id,
                                                                threat_event_ids=("ev-twice",),
                                                                issued_at_ms=ms(at(75)))])


def test_an_expiry_lifted_again_after_a_crash_is_the_same_action() -> None:
    state, cfg = HealingState(), PolicyConfig()
    [block] = decide(threat(), state, cfg, T0)
    snap = state.snapshot()  # the state a crash before the expiry's state write leaves behind
    [first] = expire(state, cfg, at(700))
    [again] = expire(HealingState.restore(snap), cfg, at(745))
    assert first == again and first.issued_at_ms == block.expires_at_ms


def test_the_memory_of_issued_actions_is_bounded() -> None:
    from scoring.healing import ISSUED_MEMORY

    state, cfg = HealingState(), PolicyConfig(max_blocks_per_minute=10**6)
    for i in range(ISSUED_MEMORY + 50):
        assert decide(threat(f"10.1.{i // 250}.{i % 250 + 1}", event_id=f"ev-{i}"), state, cfg, at(i / 1000))
    assert state.sizes()["issued"] == ISSUED_MEMORY


def test_replay_gives_identical_actions_and_state() -> None:
    cfg = PolicyConfig(max_blocks_per_minute=3)
    s1, s2 = HealingState(), HealingState()
    a1, a2 = _run(s1, cfg, _script()), _run(s2, cfg, _script())
    assert a1 == a2 and s1 == s2
    kinds = {a.action for a in a1}
    assert {"block_ip", "unblock_ip", "alert"} <= kinds
    assert len({a.action_id for a in a1}) == len(a1)


def test_snapshot_round_trips_through_json_and_behaves_identically() -> None:
    cfg = PolicyConfig()
    script = _script()
    state = HealingState()
    _run(state, cfg, script[:120])
    snap = state.snapshot()
    restored = HealingState.restore(json.loads(json.dumps(snap)))
    assert restored == state and restored.snapshot() == snap
    assert _run(restored, cfg, script[120:]) == _run(state, cfg, script[120:])
    assert restored == state


def test_restore_rejects_malformed_snapshots() -> None:
    with pytest.raises(ScoringError, match="snapshot"):
        HealingState.restore({"format": 99})
    bad = HealingState().snapshot()
    del bad["breaker"]
    with pytest.raises(ScoringError, match="snapshot"):
        HealingState.restore(bad)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(threat(), HealingState(), PolicyConfig(), datetime(2026, 3, 1, 12, 0))


# --- validation --------------------------------------------------------------------------------

def test_default_policy_is_valid() -> None:
    validate(PolicyConfig())
    assert set(ACTIONS) >= BLOCKING | {"alert", "unblock_ip"}
    assert {r.action for label in DEFAULT_RULES for r in rules_of(DEFAULT_RULES, label)} <= BLOCKING | {"alert"}


@pytest.mark.parametrize(("changes", "field"), [
    ({"rules": {"brute_force": Rule("nuke_from_orbit", 70)}}, "rules['brute_force'].action"),
    ({"rules": {"brute_force": Rule("unblock_ip", 70)}}, "rules['brute_force'].action"),
    ({"rules": {"benign": Rule("block_ip", 70)}}, "rules['benign'].action"),
    ({"rules": {"brute_force": Rule("block_ip", 101)}}, "rules['brute_force'].min_risk"),
    ({"rules": {"brute_force": Rule("block_ip", -1)}}, "rules['brute_force'].min_risk"),
    ({"rules": {"brute_force": Rule("block_ip", 70, {"x": float("nan")})}}, "min_evidence"),
    ({"rules": {"brute_force": Rule("block_ip", 70, {"x": -1})}}, "min_evidence"),
    ({"ttl_ladder_s": ()}, "ttl_ladder_s"),
    ({"ttl_ladder_s": (3600, 600)}, "ttl_ladder_s"),
    ({"ttl_ladder_s": (600, 0)}, "ttl_ladder_s"),
    ({"allowlist": ("10.0.0.0/33",)}, "allowlist"),
    ({"allowlist": ("not-a-cidr",)}, "allowlist"),
    ({"allowlist": ("10.0.0.1/8",)}, "allowlist"),
    ({"allowlist": "10.0.0.0/8"}, "allowlist"),
    ({"max_blocks_per_minute": -1}, "max_blocks_per_minute"),
    ({"offence_memory_s": -5}, "offence_memory_s"),
    ({"version": ""}, "version"),
])
def test_validate_rejects_bad_configs_naming_the_field(changes: dict, field: str) -> None:
    cfg = replace(PolicyConfig(), **changes)
    with pytest.raises(ScoringError) as err:
        validate(cfg)
    assert field in str(err.value)
    # decide refuses to act on a bad policy rather than guess.
    with pytest.raises(ScoringError):
        decide(threat(), HealingState(), cfg, T0)


# --- bounds ------------------------------------------------------------------------------------

def test_state_stays_bounded_over_eight_days_of_distinct_targets() -> None:
    """10,000 threats from distinct targets over 8 days: the state holds at most one week."""
    cfg = PolicyConfig()
    state = HealingState()
    step_s = 8 * 86400 / 10_000
    blocked_at: list[datetime] = []
    peak: dict[str, int] = {}
    for i in range(10_000):
        now = at(i * step_s)
        target = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        label = "brute_force" if i % 2 else "benign"  # half blocks, half alerts
        expire(state, cfg, now)
        [a] = decide(threat(target, label=label, risk=95, event_id=f"e{i}", at=now), state, cfg, now)
        if a.action == "block_ip":
            blocked_at.append(now)
        if i % 97 == 0 or i == 9_999:  # sizes() walks the offences: sample it
            peak = {k: max(v, peak.get(k, 0)) for k, v in state.sizes().items()}
    end = at(9_999 * step_s)
    week = sum(1 for t in blocked_at if end - t < timedelta(days=7))
    sizes = state.sizes()
    assert len(blocked_at) == 5_000
    # Offences (and their index): exactly the blocks of the last week, nothing older.
    assert sizes["offence_targets"] == sizes["offences"] == sizes["offence_index"] == week < 5_000
    oldest = min(t for _, _, times in state.snapshot()["offences"] for t in times)
    assert ms(end) - oldest < 7 * 86400 * 1000
    # Alerts and breaker hold at most a minute of events; active blocks at most one TTL's worth.
    per_min = int(60 / step_s) + 1
    assert peak["alerts"] <= per_min and peak["alert_index"] <= per_min and peak["breaker"] <= per_min
    assert peak["active"] <= int(600 / step_s) + 1
    assert peak["offence_targets"] <= int(7 * 86400 / step_s / 2) + 1


def test_offence_history_per_target_is_capped_by_the_ladder() -> None:
    """A target blocked a thousand times keeps only what can change its escalation step."""
    state, cfg = HealingState(), PolicyConfig(ttl_ladder_s=(1, 2, 3))
    now = T0
    for _ in range(1000):
        now += timedelta(seconds=5)
        expire(state, cfg, now)
        assert decide(threat(at=now), state, cfg, now)[0].ttl_s == 3 or now < at(20)
    sizes = state.sizes()
    assert sizes["offences"] == 3 and sizes["offence_index"] == 1 and sizes["breaker"] <= 12


def test_operator_release_lifts_only_that_target_once_and_repeats_itself_exactly() -> None:
    state, cfg = HealingState(), PolicyConfig()
    decide(threat(), state, cfg, T0)
    decide(threat("198.51.100.9"), state, cfg, T0)
    assert release(state, "192.0.2.1", cfg, at(5)) == []
    [u] = release(state, ATTACKER, cfg, at(10), by="operator alice")
    assert u.action == "unblock_ip" and u.target == ATTACKER and "operator alice" in u.reason
    # Asked again (a redelivered request): the same action, nothing new lifted.
    assert release(state, ATTACKER, cfg, at(11)) == [u]
    assert len(state.snapshot()["active"]) == 1  # the other target stays blocked
    # A later threat from the released address is blocked again (offence history kept: longer TTL).
    [again] = decide(threat(at=at(20)), state, cfg, at(20))
    assert again.action == "block_ip" and again.ttl_s == 3600


@pytest.mark.parametrize("spelling", ["::ffff:203.0.113.7", "::FFFF:203.0.113.7", " 203.0.113.7 "])
def test_an_operator_release_matches_any_spelling_of_the_address(spelling: str) -> None:
    state = HealingState()
    [block] = decide(threat(), state, PolicyConfig(), T0)
    [lift] = release(state, spelling, PolicyConfig(), at(60))
    assert lift.action == "unblock_ip" and lift.target == ATTACKER
    assert expire(state, PolicyConfig(), at(3600)) == []  # nothing left to lift


def test_an_operator_release_matches_any_spelling_of_an_ipv6_address() -> None:
    state = HealingState()
    decide(threat("2001:db8::7"), state, PolicyConfig(), T0)
    [lift] = release(state, "2001:0DB8:0:0:0:0:0:7", PolicyConfig(), at(60))
    assert lift.target == "2001:db8::7"


def test_a_redelivered_threat_never_re_blocks_a_target_allowlisted_since() -> None:
    """Its block comes again (same id, same content), followed by the lift, so an enforcer ends unblocked."""
    state = HealingState()
    first = decide(threat(), state, PolicyConfig(), T0)
    vouched = PolicyConfig(allowlist=("203.0.113.0/24",))
    # Redelivered before the expiry timer ran: the block is lifted now.
    again = decide(threat(), state, vouched, at(30))
    assert again[0] == first[0] and [a.action for a in again] == ["block_ip", "unblock_ip"]
    assert expire(state, vouched, at(31)) == []
    # Redelivered once more, after the lift: the very same lift again.
    assert decide(threat(), state, vouched, at(90)) == again


def test_a_threat_redelivered_after_the_expiry_timer_lifted_the_allowlisted_block_gets_that_lift() -> None:
    state = HealingState()
    first = decide(threat(), state, PolicyConfig(), T0)
    vouched = PolicyConfig(allowlist=("203.0.113.7/32",))
    [lift] = expire(state, vouched, at(30))
    assert decide(threat(), state, vouched, at(60)) == first + [lift]
