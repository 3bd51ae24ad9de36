"""Text the attacker writes never moves the blame: the hostile corpus, and properties over any such text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from features.errors import ParseError
from features.parsing import parse_line, parse_log

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "injection.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
REAL = "203.0.113.9"
VICTIM = "10.9.9.9"


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CASES)])
def test_the_hostile_corpus_blames_the_real_peer_or_is_refused(case: dict) -> None:
    expect = case["expect"]
    if "reason" in expect:
        with pytest.raises(ParseError) as err:
            parse_line(case["line"].encode(), now=NOW, bounds=None)
        assert err.value.reason.value == expect["reason"], case["why"]
        return
    event = parse_line(case["line"].encode(), now=NOW, bounds=None)
    assert event.src_ip == expect["src_ip"], case["why"]
    assert event.src_ip != VICTIM
    if "user" in expect:
        assert event.user == expect["user"], case["why"]
    if "outcome" in expect:
        assert event.auth_outcome is not None and event.auth_outcome.value == expect["outcome"], case["why"]


def test_the_corpus_covers_every_kind_of_attacker_text() -> None:
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"sshd", "pam", "access", "app_json", "envelope"}
    assert sum("reason" in c["expect"] for c in CASES) >= 4
    assert sum(VICTIM in c["line"] for c in CASES) >= 50  # the address the attacker wants blamed is in the text


# sshd escapes control characters in what it logs (OpenSSH's log path runs strnvis), so user
# names are any text without them; everything else, spaces and fake suffixes included, is fair.
_USER_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)
_FAKE_SUFFIX = st.sampled_from(["", f" from {VICTIM}", f" from {VICTIM} port 22", f" from {VICTIM} port 22 ssh2",
                                f" from {VICTIM} port 22 ssh2: RSA SHA256:x", " [preauth]", f" from {VICTIM} port"])
_PORT = st.integers(min_value=1, max_value=65535)


@given(user=_USER_TEXT, fake=_FAKE_SUFFIX, port=_PORT, invalid=st.booleans(), shape=st.sampled_from(["failed",
                                                                                                       "invalid"]))
@example(user="admin", fake=f" from {VICTIM} port 22 ssh2", port=4410, invalid=True, shape="failed")
def test_any_user_name_leaves_the_real_peer_blamed(user: str, fake: str, port: int, invalid: bool, shape: str) -> None:
    name = user + fake
    if shape == "failed":
        msg = f"Failed password for {'invalid user ' if invalid else ''}{name} from {REAL} port {port} ssh2"
    else:
        msg = f"Invalid user {name} from {REAL} port {port}"
    line = f"Jan  5 09:00:00 bastion sshd[4242]: {msg}"
    event = parse_log(line.encode(), now=NOW, bounds=None)
    assert (event.src_ip, event.src_port) == (REAL, port)


def _apache_escape(text: str) -> str:
    """A field as Apache writes it: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


_FIELD_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=80)


@given(path=_FIELD_TEXT, referrer=_FIELD_TEXT, agent=_FIELD_TEXT, status=st.integers(100, 599))
@example(path=f'/a" {VICTIM} - - [05/Jan/2026:09:00:00 +0000] "GET /', referrer="-", agent=f'" "{VICTIM}',
         status=404)
def test_any_request_referrer_or_user_agent_leaves_the_real_client_blamed(path: str, referrer: str, agent: str,
                                                                         status: int) -> None:
    line = (f'{REAL} - - [05/Jan/2026:09:00:00 +0000] "GET {_apache_escape(path)} HTTP/1.1" {status} 512 '
            f'"{_apache_escape(referrer)}" "{_apache_escape(agent)}"')
    event = parse_log(line.encode(), now=NOW, bounds=None)
    assert event.src_ip == REAL
    assert event.status == status


@given(user=_USER_TEXT)
def test_any_pam_user_name_leaves_rhost_alone(user: str) -> None:
    line = (f"Jan  5 09:00:00 bastion sshd(pam_unix)[4242]: authentication failure; logname= uid=0 euid=0 tty=ssh "
            f"ruser= rhost={REAL}  user={user}")
    event = parse_log(line.encode(), now=NOW, bounds=None)
    assert event.src_ip == REAL


@pytest.mark.parametrize("line", [
    b'{"ts":"2026-01-05T09:00:00Z","service":"api","level":"info","response_time_ms":1e200}',
    b'{"ts":"2026-01-05T09:00:00Z","service":"api","level":"info","response_time_ms":2000000000}',
    b'203.0.113.9 - - [05/Jan/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-" 999999999999999.5',
    b'{"ts":"2026-01-05T09:00:00Z","src_ip":"203.0.113.9","dst_ip":"10.0.0.5","dst_port":443,"protocol":"tcp",'
    b'"fwd_packets":3,"fwd_bytes":200,"duration_ms":1e300}',
])
def test_huge_measured_numbers_are_refused(line: bytes) -> None:
    with pytest.raises(ParseError) as err:
        parse_line(line, now=NOW, bounds=None)
    assert err.value.reason.value == "bad_value"


def test_client_text_is_cut_to_a_fixed_size() -> None:
    from features.events import TRUNCATED

    long = "A" * 400_000
    event = parse_log(f'{REAL} - - [05/Jan/2026:09:00:00 +0000] "GET /{long} HTTP/1.1" 404 5 "-" "{long}"'.encode(),
                      now=NOW, bounds=None)
    assert event.src_ip == REAL
    assert len(event.path) == 8192 + len(TRUNCATED) and event.path.endswith(TRUNCATED)
    assert len(event.user_agent) == 1024 + len(TRUNCATED)
    line = ("Jan  5 09:00:00 bastion app[1]: " + "\x01" * 1_000_000).encode()
    assert len(parse_log(line, now=NOW, bounds=None).message) == 8192 + len(TRUNCATED)
