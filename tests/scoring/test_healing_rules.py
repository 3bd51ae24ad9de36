"""Healing rules: the policy file, several rules per label, target-side actions, account locks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from scoring.errors import ScoringError
from scoring.healing import (
    BUILTIN,
    BUILTIN_TEXT,
    DEFAULT_RULES,
    HealingState,
    PolicyConfig,
    Rule,
    Threat,
    decide,
    expire,
    parse_policy,
    read_policy_toml,
    rules_of,
    validate,
)
from scoring.healing.policy import MAX_SOURCES
from scoring.healing.state import ATTACKED_TARGETS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VICTIM = "10.0.0.5"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def bot(i: int) -> str:
    return f"198.51.{100 + i // 250}.{1 + i % 250}"


def flood(i: int, *, sources: float, when: float = 0.0, risk: int = 90, dst: str | None = VICTIM,
          label: str = "ddos", **evidence: float) -> Threat:
    """The threat of one bot's flow to the victim, as the stream scores it."""
    return Threat(event_id=f"ev-{i}-{when}", label=label, risk=risk, target_type="ip", target=bot(i),
                  evidence={"dst_distinct_srcs_1m": sources, "src_flows_1m": 2.0, "dst_flows_10s": 60.0, **evidence},
                  detected_at=at(when), subjects={"dst_ip": dst} if dst else {})


def test_the_builtin_file_is_the_default_policy() -> None:
    doc, rules = read_policy_toml(BUILTIN_TEXT)
    assert rules == BUILTIN and doc["version"] == PolicyConfig().version == BUILTIN.version
    assert dict(DEFAULT_RULES) == dict(BUILTIN.rules)
    validate(PolicyConfig())
    assert [r.action for r in rules_of(DEFAULT_RULES, "ddos")] == ["rate_limit", "block_ip"]
    assert [r.target for r in rules_of(DEFAULT_RULES, "brute_force")] == ["source", "user"]


def test_a_distributed_flood_gets_one_rate_limit_on_its_target_with_the_sources_listed() -> None:
    state, cfg = HealingState(), PolicyConfig()
    actions = []
    for i in range(200):
        # The victim's distinct-source window grows as bots arrive; below 20 nothing acts yet.
        actions += decide(flood(i, sources=min(i + 1, 150), when=i * 0.2), state, cfg, at(i * 0.2))
    [a] = actions
    assert a.action == "rate_limit" and a.target == VICTIM and a.target_type == "ip" and a.ttl_s == 600
    assert a.sources == tuple(bot(i) for i in range(20)), "every bot seen so far, in order"
    assert "dst_distinct_srcs_1m=20 (>= 20)" in a.reason and "20 attacking sources listed" in a.reason
    assert a.threat_event_ids == (f"ev-19-{19 * 0.2}",)
    # Bots that came later are on the block, and its lift names them all (up to the cap).
    [lift] = expire(state, cfg, at(700))
    assert lift.action == "unblock_ip" and lift.target == VICTIM and "180 further threats" in lift.reason
    assert len(lift.sources) == MAX_SOURCES and lift.sources[-1] == bot(199)


def test_a_flood_from_few_loud_sources_blocks_them_and_a_thin_one_does_nothing() -> None:
    cfg = PolicyConfig()
    [a] = decide(flood(1, sources=3, risk=85, src_flows_1m=40), HealingState(), cfg, T0)
    assert a.action == "block_ip" and a.target == bot(1)
    assert "dst_distinct_srcs_1m=3 (<= 19)" in a.reason and "src_flows_1m=40 (>= 30)" in a.reason
    assert decide(flood(1, sources=3, risk=79, src_flows_1m=40), HealingState(), cfg, T0) == []  # risk 80
    assert decide(flood(1, sources=3, risk=85, src_flows_1m=29), HealingState(), cfg, T0) == []  # quiet bot
    # No destination windows (an event without a destination): zero sources proves nothing.
    assert decide(flood(1, sources=0, risk=85, src_flows_1m=40, dst_flows_10s=0), HealingState(), cfg, T0) == []


def test_target_side_rules_need_a_destination_and_respect_the_allowlist() -> None:
    cfg = PolicyConfig()
    assert decide(flood(1, sources=50, dst=None), HealingState(), cfg, T0) == []
    assert decide(flood(1, sources=50, dst="not-an-ip"), HealingState(), cfg, T0)[0].action == "alert"
    assert decide(flood(1, sources=50), HealingState(), PolicyConfig(allowlist=("10.0.0.0/8",)), T0) == []
    # The victim allowlisted does not protect a bot from its own rule.
    [a] = decide(flood(1, sources=3, risk=85, src_flows_1m=40), HealingState(),
                 PolicyConfig(allowlist=("10.0.0.0/8",)), T0)
    assert a.target == bot(1)


def test_an_account_attacked_from_many_sources_is_locked_briefly_and_each_source_blocked() -> None:
    state, cfg = HealingState(), PolicyConfig()

    def attempt(i: int, when: float, users: float) -> Threat:
        return Threat(event_id=f"login-{i}-{when}", label="credential_stuffing", risk=88, target_type="ip",
                      target=bot(i), detected_at=at(when), subjects={"user": "alice", "dst_ip": "10.0.0.9"},
                      evidence={"src_failed_logins_10m": 6.0, "user_distinct_srcs_10m": users,
                                "user_failed_logins_10m": 4.0 * users})
    first = decide(attempt(0, 0, 4), state, cfg, at(0))
    assert [a.action for a in first] == ["block_ip"], "four sources and 16 failures: not yet the account's turn"
    second = decide(attempt(1, 1, 5), state, cfg, at(1))
    assert [(a.action, a.target, a.target_type) for a in second] == [("block_ip", bot(1), "ip"),
                                                                     ("lock_account", "alice", "user")]
    lock = second[1]
    assert lock.ttl_s == 300 and "user_distinct_srcs_10m=5 (>= 5)" in lock.reason and "locked for 300 s" in lock.reason
    assert [a.action for a in decide(attempt(2, 2, 6), state, cfg, at(2))] == ["block_ip"], "locked already"
    # The lock lifts after 5 min; a second offence locks for 15 min, and no longer.
    assert [a.target for a in expire(state, cfg, at(301))] == ["alice"]
    again = decide(attempt(3, 400, 7), state, cfg, at(400))
    assert [(a.action, a.ttl_s) for a in again] == [("block_ip", 600), ("lock_account", 900)]
    # A threat whose event names no account locks nothing.
    no_user = Threat(event_id="x", label="brute_force", risk=90, target_type="ip", target=bot(9), detected_at=T0,
                     evidence={"src_failed_logins_10m": 9.0, "user_distinct_srcs_10m": 9.0,
                               "user_failed_logins_10m": 90.0})
    assert [a.action for a in decide(no_user, HealingState(), cfg, T0)] == ["block_ip"]


def test_a_redelivered_flood_threat_gets_the_same_actions_and_the_state_round_trips() -> None:
    state, cfg = HealingState(), PolicyConfig()
    for i in range(19):
        decide(flood(i, sources=i + 1), state, cfg, T0)
    t = flood(19, sources=20)
    first = decide(t, state, cfg, T0)
    restored = HealingState.restore(json.loads(json.dumps(state.snapshot())))
    assert restored == state
    assert decide(t, restored, cfg, at(30)) == first and len(first[0].sources) == 20
    # Snapshots written before sources were remembered still restore.
    old = state.snapshot()
    del old["attacks"]
    for b in old["active"]:
        del b["sources"]
    for _, actions in old["issued"]:
        for a in actions:
            del a["sources"]
    assert HealingState.restore(old).sizes()["attacked_targets"] == 0


def test_remembered_attacks_stay_bounded_under_hostile_volume() -> None:
    state, cfg = HealingState(), PolicyConfig()
    for i in range(3000):
        # Each threat names a fresh destination and source: what an attacker writing the logs can do.
        t = Threat(event_id=f"e{i}", label="port_scan", risk=50, target_type="ip", target=bot(i % 700),
                   evidence={}, detected_at=at(i * 0.01), subjects={"dst_ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"})
        decide(t, state, cfg, at(i * 0.01))
    for i in range(MAX_SOURCES * 3):
        decide(flood(i, sources=1, risk=10), state, cfg, at(31))
    assert state.sizes()["attacked_targets"] <= ATTACKED_TARGETS
    assert len(state.sources_of(("ip", VICTIM), 31_000 + T0.timestamp() * 1000)) <= MAX_SOURCES
    # Ten minutes later every remembered attack is forgotten at the next decision.
    decide(flood(0, sources=1, risk=10, dst=None), state, cfg, at(31 + 601))
    assert state.sizes()["attacked_targets"] == 0


def test_a_policy_can_hold_several_rules_for_one_label_each_acting() -> None:
    rules = {"ddos": (Rule("rate_limit", 70, {"dst_distinct_srcs_1m": 20}, target="destination"),
                      Rule("block_ip", 70, {"dst_distinct_srcs_1m": 20}))}
    actions = decide(flood(1, sources=25), HealingState(), PolicyConfig(rules=rules), T0)
    assert [(a.action, a.target) for a in actions] == [("rate_limit", VICTIM), ("block_ip", bot(1))]


@pytest.mark.parametrize(("text", "message"), [
    ('version = "x"\nrules = []\n', "rules: must be a non-empty list"),
    ('rules = [{label = "a", action = "alert", min_risk = 1}]\n', "version: must be a non-empty string"),
    ('version = "x"\ncolour = "red"\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = 1\n',
     "unknown key(s) ['colour']"),
    ('version = "x"\n[[rules]]\nlabel = "a"\naction = "alert"\n', "rules[0]: needs min_risk"),
    ('version = "x"\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = 1\ntarget = "moon"\n',
     "rules[0].target: must be one of"),
    ('version = "x"\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = 1\nmin_evidence = { f = "x" }\n',
     "rules[0].min_evidence.f: must be a finite number"),
    ('version = "x"\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = 1\nmin_evidence = { f = nan }\n',
     "rules[0].min_evidence.f: must be a finite number"),
    ('version = "x"\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = "high"\n',
     "rules[0].min_risk: must be a whole number"),
    ('version = "x"\nttl_ladder_s = ["10m"]\n[[rules]]\nlabel = "a"\naction = "alert"\nmin_risk = 1\n',
     "ttl_ladder_s: must be a list of whole seconds"),
    ('version = "x"\n[[rules]\n', "is not valid TOML"),
])
def test_a_bad_policy_file_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ScoringError) as err:
        read_policy_toml(text)
    assert message in str(err.value)


def test_a_policy_file_is_refused_when_too_large_or_not_utf8() -> None:
    with pytest.raises(ScoringError, match="bytes"):
        read_policy_toml(b"#" * (64 * 1024 + 1))
    with pytest.raises(ScoringError, match="not UTF-8"):
        read_policy_toml(b'version = "\xff"')


@pytest.mark.parametrize(("rule", "message"), [
    (Rule("block_ip", 70, target="user"), "block_ip acts on an ip, not on the user"),
    (Rule("lock_account", 70, target="destination"), "lock_account acts on a user, not on the destination"),
    (Rule("alert", 70, max_evidence={"x": -1}), "max_evidence['x'] must be a finite number >= 0"),
    (Rule("block_ip", 70, ttl_ladder_s=(600, 60)), "ttl_ladder_s must be sorted ascending"),
])
def test_rules_that_could_never_act_soundly_are_refused(rule: Rule, message: str) -> None:
    with pytest.raises(ScoringError) as err:
        validate(PolicyConfig(rules={"ddos": (rule,)}))
    assert message in str(err.value)


def test_parse_policy_keeps_the_order_of_rules_per_label() -> None:
    rules = parse_policy({"version": "v", "rules": [
        {"label": "a", "action": "alert", "min_risk": 1},
        {"label": "b", "action": "block_ip", "min_risk": 2},
        {"label": "a", "action": "block_ip", "min_risk": 3, "target": "destination"},
    ]})
    assert [(r.action, r.min_risk) for r in rules.rules["a"]] == [("alert", 1), ("block_ip", 3)]
    assert rules.summary() == "policy v: 3 rules for 2 labels"


def test_spraying_without_user_names_is_blocked_on_repeated_failures() -> None:
    # PAM's "authentication failure" lines name no user: spraying shows only as failures.
    def spray(failures: float, users: float) -> Threat:
        return Threat(event_id=f"s-{failures}-{users}", label="password_spraying", risk=77, target_type="ip",
                      target=bot(3), detected_at=T0,
                      evidence={"src_failed_logins_10m": failures, "src_distinct_users_10m": users})
    assert [a.action for a in decide(spray(5, 0), HealingState(), PolicyConfig(), T0)] == ["block_ip"]
    assert [a.action for a in decide(spray(1, 5), HealingState(), PolicyConfig(), T0)] == ["block_ip"]
    assert decide(spray(4, 4), HealingState(), PolicyConfig(), T0) == []
    [a] = decide(spray(6, 6), HealingState(), PolicyConfig(), T0)  # both rules met: one block
    assert a.action == "block_ip"


def test_shedding_forgets_sources_first_then_old_issued_actions_never_blocks() -> None:
    state, cfg = HealingState(), PolicyConfig()
    for i in range(40):
        decide(flood(i, sources=i + 1), state, cfg, T0)
    assert state.sizes()["attacked_targets"] == 1 and state.sizes()["active"] == 1
    issued = state.sizes()["issued"]
    assert state.shed() and state.sizes()["attacked_targets"] == 0 and state.sizes()["issued"] == issued
    assert state.shed() and state.sizes()["issued"] == issued - max(1, issued // 2)
    while state.shed():
        pass
    assert state.sizes()["issued"] == state.sizes()["alerts"] == 0
    assert state.sizes()["active"] == 1, "blocks are never shed"


def _probe(risk: int = 85, label: str = "web_scan", **evidence: float) -> Threat:
    """One request of a source probing the web server, as the stream scores it."""
    windows = {"src_http_4xx_5m": 60.0, "src_distinct_pages_5m": 80.0, "src_sensitive_paths_5m": 12.0, **evidence}
    return Threat(event_id="ev-scan", label=label, risk=risk, target_type="ip", target="203.0.113.9",
                  evidence=windows, detected_at=T0)


def test_a_web_scanner_is_blocked_on_its_evidence_and_a_crawler_with_404s_is_not() -> None:
    cfg = PolicyConfig()
    [a] = decide(_probe(), HealingState(), cfg, T0)
    assert a.action == "block_ip" and a.target == "203.0.113.9"
    assert "src_sensitive_paths_5m=12 (>= 3)" in a.reason and "src_http_4xx_5m=60 (>= 20)" in a.reason
    # A search-engine crawl: hundreds of pages and dead links, but no secrets asked for.
    assert decide(_probe(src_sensitive_paths_5m=0), HealingState(), cfg, T0) == []
    # One console hammered: a single path, refused again and again.
    [b] = decide(_probe(src_distinct_pages_5m=1, src_sensitive_paths_5m=40), HealingState(), cfg, T0)
    assert b.action == "block_ip" and "src_sensitive_paths_5m=40 (>= 20)" in b.reason
    assert decide(_probe(src_distinct_pages_5m=1, src_sensitive_paths_5m=19), HealingState(), cfg, T0) == []
    assert decide(_probe(src_http_4xx_5m=5), HealingState(), cfg, T0) == []
    assert decide(_probe(risk=69), HealingState(), cfg, T0) == []
