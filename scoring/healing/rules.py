"""Healing rules and the policy file that holds them (TOML), read strictly; the built-in file ships here.

The file is the operators' to change (`streamguard control policy FILE` loads one into every
worker; `STREAMGUARD_POLICY_FILE` sets one at start). Reading it checks its shape: known keys
only, the right types, a version and at least one rule. What the values mean (known actions,
risks in 0..100, a sorted ladder) is checked by `policy.validate`, as for every policy.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import ScoringError

__all__ = ["BUILTIN", "BUILTIN_TEXT", "MAX_POLICY_BYTES", "TARGETS", "PolicyRules", "Rule", "RuleSet",
           "parse_policy", "read_policy_toml", "rules_of"]

# Whom a rule acts on: the threat's own entity (its source), the destination of its event (a
# distributed attack on one host), or the account its event names (an attack on one account).
TARGETS: tuple[str, ...] = ("source", "destination", "user")
MAX_POLICY_BYTES = 64 * 1024  # a policy travels in one signed control command
_RULE_KEYS = {"label", "action", "min_risk", "min_evidence", "max_evidence", "target", "ttl_ladder_s"}
_TOP_KEYS = {"version", "ttl_ladder_s", "offence_memory_s", "rules"}


@dataclass(frozen=True)
class Rule:
    """What to do for one attack label: the action, on whom, the minimum risk and the evidence required."""

    action: str  # one of policy.ACTIONS except unblock_ip
    min_risk: int  # act only at or above this risk
    min_evidence: dict[str, float] = field(default_factory=dict)  # ALL must be met (>=)
    target: str = "source"  # one of TARGETS
    max_evidence: dict[str, float] = field(default_factory=dict)  # ALL must hold (<=): e.g. "few sources"
    ttl_ladder_s: tuple[int, ...] | None = None  # this rule's escalation ladder (None: the policy's)


RuleSet = Rule | tuple[Rule, ...]  # a label's rules: one, or several that each act when met


def rules_of(rules: Mapping[str, RuleSet], label: str) -> tuple[Rule, ...]:
    """The rules of `label` as a tuple, in order (none: empty)."""
    found = rules.get(label)
    if found is None:
        return ()
    return (found,) if isinstance(found, Rule) else tuple(found)


@dataclass(frozen=True)
class PolicyRules:
    """What a policy file sets: its version, rules per label, the escalation ladder and memory."""

    version: str
    rules: Mapping[str, tuple[Rule, ...]]
    ttl_ladder_s: tuple[int, ...] = (600, 3600, 86400)
    offence_memory_s: int = 7 * 86400

    def summary(self) -> str:
        """One line for a reply or a log: version, rule and label counts."""
        n = sum(len(r) for r in self.rules.values())
        return f"policy {self.version}: {n} rules for {len(self.rules)} labels"


def _fail(where: str, what: str) -> ScoringError:
    return ScoringError(f"policy {where}: {what}")


def _number_map(where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a table of feature = number, got {type(value).__name__}")
    out = {}
    for feat, threshold in value.items():
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not math.isfinite(threshold)):
            raise _fail(f"{where}.{feat}", f"must be a finite number, got {threshold!r}")
        out[str(feat)] = float(threshold)
    return out


def _ladder(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _fail(where, f"must be a list of whole seconds, got {value!r}")
    return tuple(value)


def _rule(where: str, raw: Any) -> tuple[str, Rule]:
    if not isinstance(raw, Mapping):
        raise _fail(where, f"must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown} (known: {sorted(_RULE_KEYS)})")
    for key in ("label", "action", "min_risk"):
        if key not in raw:
            raise _fail(where, f"needs {key}")
    label, action, risk = raw["label"], raw["action"], raw["min_risk"]
    if not isinstance(label, str) or not label:
        raise _fail(f"{where}.label", f"must be a non-empty string, got {label!r}")
    if not isinstance(action, str):
        raise _fail(f"{where}.action", f"must be a string, got {action!r}")
    if isinstance(risk, bool) or not isinstance(risk, int):
        raise _fail(f"{where}.min_risk", f"must be a whole number, got {risk!r}")
    target = raw.get("target", "source")
    if target not in TARGETS:
        raise _fail(f"{where}.target", f"must be one of {list(TARGETS)}, got {target!r}")
    ladder = raw.get("ttl_ladder_s")
    return label, Rule(action=action, min_risk=risk, target=target,
                       min_evidence=_number_map(f"{where}.min_evidence", raw.get("min_evidence", {})),
                       max_evidence=_number_map(f"{where}.max_evidence", raw.get("max_evidence", {})),
                       ttl_ladder_s=None if ladder is None else _ladder(f"{where}.ttl_ladder_s", ladder))


def parse_policy(doc: Mapping[str, Any]) -> PolicyRules:
    """A policy document (parsed TOML, or its JSON form in a control command) as rules; raises ScoringError."""
    if not isinstance(doc, Mapping):
        raise _fail("document", f"must be a table, got {type(doc).__name__}")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise _fail("document", f"unknown key(s) {unknown} (known: {sorted(_TOP_KEYS)})")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise _fail("version", f"must be a non-empty string of at most 64 characters, got {version!r}")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _fail("rules", "must be a non-empty list of [[rules]] tables")
    rules: dict[str, list[Rule]] = {}
    for i, raw in enumerate(raw_rules):
        label, rule = _rule(f"rules[{i}]", raw)
        rules.setdefault(label, []).append(rule)
    memory = doc.get("offence_memory_s", 7 * 86400)
    if isinstance(memory, bool) or not isinstance(memory, int):
        raise _fail("offence_memory_s", f"must be whole seconds, got {memory!r}")
    ladder = _ladder("ttl_ladder_s", doc["ttl_ladder_s"]) if "ttl_ladder_s" in doc else (600, 3600, 86400)
    return PolicyRules(version=version, rules={k: tuple(v) for k, v in rules.items()}, ttl_ladder_s=ladder,
                       offence_memory_s=memory)


def read_policy_toml(text: str | bytes) -> tuple[dict[str, Any], PolicyRules]:
    """A policy file's text as its document (for the control command) and its rules; raises ScoringError."""
    if isinstance(text, bytes):
        if len(text) > MAX_POLICY_BYTES:
            raise _fail("file", f"is {len(text)} bytes; at most {MAX_POLICY_BYTES} travel in a control command")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail("file", f"is not UTF-8 ({exc})") from exc
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise _fail("file", f"is larger than {MAX_POLICY_BYTES} bytes, the most a control command carries")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail("file", f"is not valid TOML: {exc}") from exc
    return doc, parse_policy(doc)


BUILTIN_TEXT: str = resources.files(__package__).joinpath("default_policy.toml").read_text(encoding="utf-8")
BUILTIN: PolicyRules = read_policy_toml(BUILTIN_TEXT)[1]
