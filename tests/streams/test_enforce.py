"""What each healing action becomes at an enforcement point (pure planning, no nft run)."""

from __future__ import annotations

import pytest

from streams.enforce import NftBackend, plan, ruleset
from streams.wire import HealingAction

NOW = 1_767_600_000_000


def action(kind: str = "block_ip", target: str = "203.0.113.7", **over: object) -> HealingAction:
    fields = {"action_id": "a1", "action": kind, "target": target, "target_type": "ip", "reason": "brute force",
              "risk": 90, "ttl_s": 600, "expires_at_ms": NOW + 600_000, "dry_run": False, "threat_event_ids": ["t"],
              "policy_version": "1", "issued_at_ms": NOW, **over}
    return HealingAction.model_validate(fields)


def test_a_block_becomes_a_set_element_that_expires_when_the_action_does() -> None:
    p = plan(action(), NOW + 1_500, table="sg")
    assert p.outcome == "applied"
    assert p.commands == [["add", "element", "inet", "sg", "blocked_v4", "{ 203.0.113.7 timeout 599s }"]]


def test_ipv6_goes_to_its_own_set_in_normal_form_and_no_expiry_means_none() -> None:
    p = plan(action(target="2001:DB8:0:0::1", expires_at_ms=None, ttl_s=0), NOW, table="sg")
    assert p.commands == [["add", "element", "inet", "sg", "blocked_v6", "{ 2001:db8::1 }"]]
    assert "until unblocked" in p.detail


def test_an_unblock_removes_the_element() -> None:
    p = plan(action("unblock_ip", expires_at_ms=None, ttl_s=0), NOW, table="sg")
    assert p.commands == [["delete", "element", "inet", "sg", "blocked_v4", "{ 203.0.113.7 }"]]


@pytest.mark.parametrize(("over", "outcome"), [
    ({"dry_run": True}, "dry_run"),
    ({"expires_at_ms": NOW - 1}, "expired"),
    ({"action": "alert"}, "ignored"),
    ({"action": "lock_account", "target": "root"}, "ignored"),
    ({"target": "203.0.113.7 } ; flush ruleset ; add element inet sg blocked_v4 { 10.0.0.1"}, "failed"),
    ({"target": "not-an-ip"}, "failed"),
])
def test_what_runs_nothing(over: dict, outcome: str) -> None:
    p = plan(action(**over), NOW, table="sg")
    assert (p.outcome, p.commands) == (outcome, [])


def test_the_ruleset_is_one_script_that_can_be_loaded_again() -> None:
    script = ruleset("sg")
    assert "flush chain inet sg input" in script  # rules are replaced, not appended, on every start
    assert script.count("drop") == 2


def test_commands_are_argument_lists_shown_quoted() -> None:
    backend = NftBackend("ip netns exec ns1 nft")
    assert backend.line(["add", "element", "inet", "sg", "blocked_v4", "{ 1.2.3.4 }"]) == \
        "ip netns exec ns1 nft add element inet sg blocked_v4 '{ 1.2.3.4 }'"
    with pytest.raises(ValueError):
        NftBackend("  ")
