"""Policy files for workers and the CLI, and the signed command that carries one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from scoring.healing import BUILTIN, BUILTIN_TEXT, PolicyConfig
from streams.control import Command, Verifier, sign
from streams.policy import PolicyFileError, builtin_document, read_policy_file, rules_from_document, with_rules
from tests.conftest import ROOT, SIGNING_SECRET
from tests.streams.conftest import BIN


def test_the_builtin_document_reads_back_to_the_builtin_rules(tmp_path: Path) -> None:
    assert rules_from_document(builtin_document()) == BUILTIN
    path = tmp_path / "p.toml"
    path.write_text(BUILTIN_TEXT)
    doc, rules = read_policy_file(path)
    assert doc == builtin_document() and rules == BUILTIN


@pytest.mark.parametrize(("text", "message"), [
    (BUILTIN_TEXT.replace("src_distinct_dst_ports_1m = 10", "src_distinct_dst_port_1m = 10"),
     "unknown feature(s) ['src_distinct_dst_port_1m']"),
    (BUILTIN_TEXT.replace('action = "rate_limit"', 'action = "nuke"'), "rules.8.action: Input should be"),
    (BUILTIN_TEXT.replace('target = "destination"', 'target = "user"'),
     "rules['ddos'][0]: rate_limit acts on an ip, not on the user"),
    (BUILTIN_TEXT.replace("min_risk = 90", "min_risk = 900"), "rules.16.min_risk: Input should be less than"),
])
def test_a_bad_file_is_refused_with_its_path_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as err:
        read_policy_file(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read policy file .*absent.toml"):
        read_policy_file(tmp_path / "absent.toml")


def test_with_rules_keeps_the_operators_switches() -> None:
    cfg = PolicyConfig(allowlist=("10.0.0.0/8",), dry_run=True, max_blocks_per_minute=3, paused=True)
    new = with_rules(cfg, BUILTIN)
    assert (new.allowlist, new.dry_run, new.max_blocks_per_minute, new.paused) == (("10.0.0.0/8",), True, 3, True)
    assert new.version == BUILTIN.version


def test_a_policy_command_needs_its_policy_and_survives_signing() -> None:
    with pytest.raises(ValidationError, match="policy needs policy"):
        Command(op="policy")
    env = sign(Command(op="policy", policy=builtin_document()), SIGNING_SECRET, app_id="a", now_ms=1_000_000)
    got = Verifier(SIGNING_SECRET, app_id="a").verify(env.model_dump_json().encode(), now_ms=1_000_000)
    assert got.command.policy == builtin_document()
    # A policy changed in transit breaks the signature.
    raw = env.model_dump_json().replace('"min_risk":70', '"min_risk":1', 1).encode()
    with pytest.raises(Exception, match="bad_signature"):
        Verifier(SIGNING_SECRET, app_id="a").verify(raw, now_ms=1_000_000)


def test_the_cli_checks_and_prints_policies_without_a_broker(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN), "control", "policy", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})

    shown = cli("--show-builtin")
    assert shown.returncode == 0 and shown.stdout == BUILTIN_TEXT
    path = tmp_path / "mine.toml"
    path.write_text(BUILTIN_TEXT)
    checked = cli(str(path), "--check")
    out = checked.stdout + checked.stderr
    assert checked.returncode == 0 and "policy 2: 17 rules for 11 labels" in out
    assert "ddos                 rate_limit   on destination risk >= 70  dst_distinct_srcs_1m >= 20" in out
    path.write_text("version = 1\n")
    refused = cli(str(path), "--check")
    assert refused.returncode != 0 and "version: must be a non-empty string" in refused.stdout + refused.stderr
