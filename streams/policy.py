"""Healing policy files for the worker and the CLI: read, check against both the schema and the policy, apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import ValidationError

from features.extract import FEATURE_NAMES
from scoring.errors import ScoringError
from scoring.healing import BUILTIN_TEXT, PolicyConfig, PolicyRules, parse_policy, read_policy_toml, validate

from .control import HealingPolicy
from .errors import StreamsError

__all__ = ["PolicyFileError", "builtin_document", "read_policy_file", "rules_from_document", "with_rules"]


class PolicyFileError(StreamsError):
    """A policy file or document that cannot be used; the message names the file and the first problem."""


def with_rules(cfg: PolicyConfig, rules: PolicyRules) -> PolicyConfig:
    """`cfg` with the rules, ladder and memory of a policy file; raises PolicyFileError when the result is unsound."""
    new = dataclasses.replace(cfg, version=rules.version, rules=dict(rules.rules), ttl_ladder_s=rules.ttl_ladder_s,
                              offence_memory_s=rules.offence_memory_s)
    try:
        validate(new)
    except ScoringError as exc:
        raise PolicyFileError(f"policy {rules.version}: {exc}") from None
    return new


def rules_from_document(doc: HealingPolicy) -> PolicyRules:
    """The rules of a policy document (as a control command carries it), checked like a file."""
    try:
        rules = parse_policy(doc.model_dump(mode="json", exclude_none=True))
    except ScoringError as exc:
        raise PolicyFileError(str(exc)) from None
    with_rules(PolicyConfig(), rules)  # semantic checks: known actions, risks, ladders
    for label, found in rules.rules.items():
        for i, rule in enumerate(found):
            # A misspelt feature would make its rule silently never act.
            unknown = sorted((set(rule.min_evidence) | set(rule.max_evidence)) - set(FEATURE_NAMES))
            if unknown:
                raise PolicyFileError(f"policy {rules.version}: rules[{label!r}][{i}]: unknown feature(s) {unknown} "
                                      "(the names are in docs/models.md#features)")
    return rules


def _document(raw: dict, where: str) -> HealingPolicy:
    try:
        return HealingPolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PolicyFileError(f"{where}: {loc}: {first['msg']}") from None


def read_policy_file(path: Path) -> tuple[HealingPolicy, PolicyRules]:
    """A policy file as the document to send and its rules; raises PolicyFileError naming the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    try:
        raw, _ = read_policy_toml(data)
    except ScoringError as exc:
        raise PolicyFileError(f"{path}: {exc}") from None
    doc = _document(raw, str(path))
    try:
        return doc, rules_from_document(doc)
    except PolicyFileError as exc:
        raise PolicyFileError(f"{path}: {exc}") from None


def builtin_document() -> HealingPolicy:
    """The built-in policy file as a document."""
    return _document(read_policy_toml(BUILTIN_TEXT)[0], "built-in policy")
