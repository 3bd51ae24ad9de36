"""Tests of the log and flow parsers: concrete values for real-looking lines, and refusal reasons for ugly input."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features.errors import ParseError, Reason
from features.events import AuthOutcome, Event, EventKind
from features.parsing import (
    MAX_MESSAGE_BYTES,
    TimeBounds,
    normalise_label,
    parse_flow,
    parse_line,
    parse_log,
    read_log_file,
)

UTC = UTC
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data"
LINUX_2K = DATA / "loghub" / "Linux_2k.log"

FLOW = (
    '{"ts": 1795000000000, "src_ip": "10.0.0.5", "src_port": 51515, "dst_ip": "10.0.0.9", "dst_port": 443,'
    ' "protocol": "tcp", "duration_ms": 1200, "fwd_packets": 10, "bwd_packets": 8, "fwd_bytes": 1500,'
    ' "bwd_bytes": 9000, "flags": {"syn": 1, "ack": 9, "fin": 1, "rst": 0, "psh": 3, "urg": 0}, "label": "DDoS"}'
)
APP = (
    '{"ts": 1795000000000, "level": "WARN", "service": "checkout", "message": "slow payment",'
    ' "response_time_ms": 12.5, "status": 503, "src_ip": "2001:DB8::1", "user": "bob", "host": "web-1",'
    ' "method": "post", "path": "/pay?x=%20"}'
)
TS_1795 = datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)  # 1_795_000_000 s


def _log(line: str | bytes, **kw: object) -> Event:
    return parse_log(line, now=NOW, **kw)  # type: ignore[arg-type]


def _reason(fn, raw, **kw: object) -> Reason:
    with pytest.raises(ParseError) as info:
        fn(raw, now=NOW, **kw)
    assert info.value.detail  # every refusal says what was wrong
    return info.value.reason


# --- syslog ---------------------------------------------------------------------------------------


def test_pam_failure_with_ip_rhost() -> None:
    line = (
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 "
        "tty=NODEVssh ruser= rhost=218.188.2.4  user=root"
    )
    ev = _log(line)
    assert ev.kind is EventKind.AUTH and ev.source == "sshd"
    assert ev.ts == datetime(2026, 6, 14, 15, 16, 1, tzinfo=UTC)
    assert (ev.host, ev.service, ev.user) == ("combo", "sshd", "root")
    assert ev.auth_outcome is AuthOutcome.FAILURE
    assert ev.src_ip == "218.188.2.4" and ev.src_host is None


def test_pam_failure_with_hostname_rhost_and_no_user() -> None:
    line = (
        "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 "
        "tty=NODEVssh ruser= rhost=220-135-151-1.HINET-ip.hinet.net "
    )
    ev = _log(line, year=2005)
    assert ev.ts == datetime(2005, 6, 15, 2, 4, 59, tzinfo=UTC)
    assert ev.src_ip is None and ev.src_host == "220-135-151-1.hinet-ip.hinet.net"
    assert ev.user is None  # `ruser=` must not be read as the user


def test_openssh_failed_password_invalid_user() -> None:
    ev = _log(
        "Dec 10 06:55:46 gate sshd[24200]: Failed password for invalid user webmaster from 198.51.100.186 port 38926 ssh2"
    )
    assert ev.auth_outcome is AuthOutcome.INVALID_USER
    assert (ev.user, ev.src_ip, ev.src_port, ev.host, ev.service) == (
        "webmaster", "198.51.100.186", 38926, "gate", "sshd"
    )  # fmt: skip
    # Dec 10 of 2026 would be 17 days after NOW: the standard rule takes the previous year.
    assert ev.ts == datetime(2025, 12, 10, 6, 55, 46, tzinfo=UTC)


@pytest.mark.parametrize(
    ("msg", "outcome", "user", "ip", "port"),
    [
        ("Failed password for root from 1.2.3.4 port 22 ssh2", AuthOutcome.FAILURE, "root", "1.2.3.4", 22),
        ("Accepted password for alice from 10.0.0.5 port 51234 ssh2", AuthOutcome.SUCCESS, "alice", "10.0.0.5", 51234),
        ("Accepted publickey for deploy from 2001:db8::7 port 2222 ssh2", AuthOutcome.SUCCESS, "deploy", "2001:db8::7", 2222),
        ("Invalid user admin from 1.2.3.4 port 5555", AuthOutcome.INVALID_USER, "admin", "1.2.3.4", 5555),
        (
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4 user=root",
            AuthOutcome.FAILURE, "root", "1.2.3.4", None,
        ),
        ("check pass; user unknown", AuthOutcome.FAILURE, None, None, None),
    ],
)  # fmt: skip
def test_sshd_messages(msg: str, outcome: AuthOutcome, user: str | None, ip: str | None, port: int | None) -> None:
    ev = _log(f"Nov 23 08:00:00 bastion sshd[77]: {msg}")
    assert ev.kind is EventKind.AUTH
    assert (ev.auth_outcome, ev.user, ev.src_ip, ev.src_port) == (outcome, user, ip, port)
    assert ev.ts == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_su_session_lines() -> None:
    opened = _log("Jun 14 15:16:01 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)")
    closed = _log("Jun 14 15:16:02 combo su(pam_unix)[21416]: session closed for user cyrus")
    for ev in (opened, closed):
        assert (ev.kind, ev.service, ev.user, ev.auth_outcome) == (EventKind.AUTH, "su", "cyrus", AuthOutcome.SESSION)


def test_other_syslog_lines_are_app_events() -> None:
    ev = _log("Jun 15 04:06:20 combo logrotate: ALERT exited abnormally with [1]")
    assert (ev.kind, ev.source, ev.host, ev.service) == (EventKind.APP, "syslog", "combo", "logrotate")
    assert ev.message == "ALERT exited abnormally with [1]" and ev.level is None
    ftp = _log("Jun 17 07:07:00 combo ftpd[29504]: connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net)")
    assert (ftp.kind, ftp.service) == (EventKind.APP, "ftpd")
    assert ftp.message.startswith("connection from 24.54.76.216")


def test_iso_timestamp_prefix() -> None:
    ev = _log("2026-11-23T10:00:00.123+01:00 gw sshd[9]: Failed password for root from 198.51.100.7 port 40000 ssh2")
    assert ev.ts == datetime(2026, 11, 23, 9, 0, 0, 123000, tzinfo=UTC)
    assert (ev.host, ev.src_ip, ev.auth_outcome) == ("gw", "198.51.100.7", AuthOutcome.FAILURE)


def test_year_inference_and_explicit_year() -> None:
    now = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
    assert parse_log("Dec 31 23:59:00 h k: m", now=now).ts.year == 2026  # just before a new year
    assert parse_log("Jan  1 23:00:00 h k: m", now=now).ts.year == 2027  # less than a day ahead: same year
    assert parse_log("Feb 29 10:00:00 h k: m", now=now, bounds=None).ts == datetime(2024, 2, 29, 10, tzinfo=UTC)
    assert parse_log("Jun 14 15:16:01 h k: m", now=now, year=2005, bounds=None).ts.year == 2005


def test_syslog_bad_values() -> None:
    assert _reason(parse_log, "Jun 31 10:00:00 h k: m") is Reason.BAD_TIMESTAMP
    assert _reason(parse_log, "Jun 14 25:00:00 h k: m") is Reason.BAD_TIMESTAMP
    assert _reason(parse_log, "Jun 14 10:00:00 h sshd[1]: Failed password for root from 1.2.3.4 port 70000 ssh2") is Reason.BAD_VALUE
    assert _reason(parse_log, "Jun 14 10:00:00 h sshd[1]: Accepted password for a from 999.1.1.1 port 22 ssh2") is Reason.BAD_IP
    assert _reason(parse_log, "Jun 14 10:00:00 h k: m", year=1999) is Reason.TIME_OUT_OF_RANGE
    assert _reason(parse_log, "Jun 14 10:00:00 h k: m", year=2027) is Reason.TIME_OUT_OF_RANGE
    assert _reason(parse_log, "not a syslog line at all") is Reason.UNKNOWN_FORMAT


def test_linux_2k_parses_without_errors() -> None:
    items = list(read_log_file(LINUX_2K, now=NOW, year=2005))
    text = LINUX_2K.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(items) == len(lines) == 2000
    errors = [item for item in items if isinstance(item, ParseError)]
    assert errors == []
    events: list[Event] = items  # type: ignore[assignment]
    assert all(ev.ts.year == 2005 and ev.host == "combo" for ev in events)
    # Independent count: PAM failures naming a remote host, and klogind failures from an address.
    pattern = re.compile(r"authentication failure;.*rhost=\S|Authentication failed from \S")
    expected = sum(1 for line in lines if pattern.search(line))
    failures_with_remote = [
        ev for ev in events
        if ev.auth_outcome is AuthOutcome.FAILURE and (ev.src_ip is not None or ev.src_host is not None)
    ]  # fmt: skip
    assert len(failures_with_remote) == expected == 512
    first = events[0]
    assert (first.ts, first.src_ip, first.auth_outcome) == (
        datetime(2005, 6, 14, 15, 16, 1, tzinfo=UTC), "218.188.2.4", AuthOutcome.FAILURE
    )  # fmt: skip
    assert sum(ev.auth_outcome is AuthOutcome.SESSION for ev in events) == sum(
        1 for line in lines if re.search(r"session (opened|closed) for user", line)
    )


def test_read_log_file_reports_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(b"Jun 14 15:16:01 combo k: fine\n\n   \ngarbage here\n\xff\xfe\n")
    items = list(read_log_file(path, now=NOW))
    assert len(items) == 3
    assert isinstance(items[0], Event)
    assert isinstance(items[1], ParseError) and items[1].reason is Reason.UNKNOWN_FORMAT
    assert items[1].detail.startswith("line 4:")
    assert isinstance(items[2], ParseError) and items[2].reason is Reason.NOT_UTF8


# --- access log -----------------------------------------------------------------------------------


def test_combined_access_log() -> None:
    line = (
        '203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?q=1%20x HTTP/1.0" 200 2326 '
        '"http://ref/" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    )
    ev = _log(line)
    assert (ev.kind, ev.source) == (EventKind.HTTP, "access_log")
    assert ev.ts == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert (ev.src_ip, ev.user, ev.method, ev.path, ev.status, ev.response_bytes) == (
        "203.0.113.9", "alice", "GET", "/apache_pb.gif?q=1%20x", 200, 2326
    )  # fmt: skip
    assert ev.user_agent == "Mozilla/4.08 [en] (Win98; I ;Nav)" and ev.response_time_ms is None


def test_common_access_log_and_response_times() -> None:
    ev = _log('10.1.2.3 - - [23/Nov/2026:11:00:00 +0000] "POST /login HTTP/1.1" 401 -')
    assert (ev.user, ev.method, ev.path, ev.status, ev.response_bytes, ev.user_agent) == (
        None, "POST", "/login", 401, 0, None
    )  # fmt: skip
    nginx = _log('10.1.2.3 - - [23/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0" 0.123')
    assert nginx.response_time_ms == pytest.approx(123.0)
    apache = _log('10.1.2.3 - - [23/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0" 2500')
    assert apache.response_time_ms == pytest.approx(2.5)  # %D microseconds


@pytest.mark.parametrize("request_line", ["-", r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ""])
def test_junk_request_line_is_still_http(request_line: str) -> None:
    ev = _log(f'198.51.100.4 - - [23/Nov/2026:11:00:00 +0000] "{request_line}" 400 226 "-" "-"')
    assert (ev.kind, ev.method, ev.path, ev.status, ev.src_ip) == (EventKind.HTTP, None, None, 400, "198.51.100.4")


def test_access_log_bad_values() -> None:
    assert _reason(parse_log, '999.1.1.1 - - [23/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5') is Reason.BAD_IP
    assert _reason(parse_log, '1.1.1.1 - - [99/Foo/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5') is Reason.BAD_TIMESTAMP


# --- JSON application logs ------------------------------------------------------------------------


def test_app_json_record() -> None:
    ev = _log(APP)
    assert (ev.kind, ev.source, ev.ts) == (EventKind.APP, "app_json", TS_1795)
    assert (ev.level, ev.service, ev.message, ev.response_time_ms, ev.status) == (
        "warning", "checkout", "slow payment", 12.5, 503
    )  # fmt: skip
    assert (ev.src_ip, ev.user, ev.host, ev.method, ev.path) == ("2001:db8::1", "bob", "web-1", "POST", "/pay?x=%20")


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ('"2026-11-23T10:00:00Z"', datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ('"2026-11-23T11:00:00.5+01:00"', datetime(2026, 11, 23, 10, 0, 0, 500000, tzinfo=UTC)),
        ("1795000000", TS_1795),  # seconds, recognised by size
        ('"1795000000000"', TS_1795),
    ],
)
def test_app_json_timestamp_forms(ts: str, expected: datetime) -> None:
    assert _log(f'{{"ts": {ts}, "level": "info", "service": "s"}}').ts == expected


def test_shipper_envelopes() -> None:
    fluent = '{"log": "Jun 14 15:16:01 combo su(pam_unix)[21416]: session closed for user news\\n", "stream": "stdout"}'
    ev = _log(fluent)
    assert (ev.kind, ev.service, ev.user, ev.auth_outcome) == (EventKind.AUTH, "su", "news", AuthOutcome.SESSION)
    vector = '{"line": "{\\"ts\\": 1795000000000, \\"level\\": \\"error\\", \\"service\\": \\"api\\"}", "host": "x"}'
    inner = _log(vector)
    assert (inner.kind, inner.service, inner.level, inner.ts) == (EventKind.APP, "api", "error", TS_1795)
    assert _reason(parse_log, '{"log": "????"}') is Reason.UNKNOWN_FORMAT


def test_nested_envelopes_are_limited() -> None:
    line = "Jun 14 15:16:01 combo k: m"
    for _ in range(3):
        line = json.dumps({"log": line})
    assert parse_line(line, now=NOW).message == "m"
    assert _reason(parse_line, json.dumps({"log": line})) is Reason.UNKNOWN_FORMAT


# --- JSON flows -----------------------------------------------------------------------------------


def test_minimal_flow() -> None:
    ev = parse_flow(FLOW, now=NOW)
    assert (ev.kind, ev.source, ev.ts) == (EventKind.FLOW, "flow_json", TS_1795)
    assert (ev.src_ip, ev.src_port, ev.dst_ip, ev.dst_port, ev.protocol) == ("10.0.0.5", 51515, "10.0.0.9", 443, 6)
    assert ev.duration_s == pytest.approx(1.2)
    assert (ev.fwd_packets, ev.bwd_packets, ev.fwd_bytes, ev.bwd_bytes) == (10, 8, 1500, 9000)
    assert (ev.syn_count, ev.ack_count, ev.fin_count, ev.rst_count, ev.psh_count, ev.urg_count) == (1, 9, 1, 0, 3, 0)
    assert ev.label == "ddos"


def test_minimal_flow_defaults_and_numeric_protocol() -> None:
    ev = parse_flow(
        b'{"ts": "2026-11-23T11:00:00Z", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "dst_port": 53,'
        b' "protocol": 17, "fwd_packets": 1, "fwd_bytes": 60}',
        now=NOW,
    )
    assert (ev.protocol, ev.src_port, ev.duration_s, ev.bwd_packets, ev.bwd_bytes, ev.syn_count, ev.label) == (
        17, None, 0.0, 0, 0, 0, None
    )  # fmt: skip


def test_parse_line_routes_both_topics() -> None:
    assert parse_line(FLOW, now=NOW).kind is EventKind.FLOW
    assert parse_line(APP, now=NOW).kind is EventKind.APP
    assert parse_line("Jun 14 15:16:01 combo k: m", now=NOW).kind is EventKind.APP
    assert parse_line('1.2.3.4 - - [23/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 5', now=NOW).kind is EventKind.HTTP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BENIGN", "benign"),
        (" DDoS ", "ddos"),
        ("PortScan", "port_scan"),
        ("Web Attack – Brute Force", "web_attack_brute_force"),
        ("Web Attack \x96 XSS", "web_attack_xss"),
        ("Web Attack \ufffd Sql Injection", "web_attack_sql_injection"),
        ("DoS Slowhttptest", "dos_slowhttptest"),
        ("FTP-Patator", "ftp_patator"),
    ],
)
def test_normalise_label(raw: str, expected: str) -> None:
    assert normalise_label(raw) == expected


# --- ugly input -----------------------------------------------------------------------------------

_FLOW_BASE = '"src_ip": "10.0.0.5", "dst_ip": "10.0.0.9", "dst_port": 443, "protocol": "tcp", "fwd_packets": 10, "fwd_bytes": 1500'
_FUTURE_MS = int((NOW + timedelta(days=30)).timestamp() * 1000)


def _flow(extra: str, ts: str = "1795000000000") -> str:
    return f'{{"ts": {ts}, {_FLOW_BASE}{extra}}}'


UGLY = [
    # (id, parser, raw, expected reason; None = accepted)
    ("empty", parse_line, b"", Reason.EMPTY),
    ("whitespace", parse_log, " \r\n\t ", Reason.EMPTY),
    ("binary-junk", parse_line, b"\x00\xff\xfe\x9c\x13\x80\x00\x01garbage", Reason.NOT_UTF8),
    ("binary-utf8-junk", parse_log, b"\x00\x01\x02\x7f\x1b[31m", Reason.UNKNOWN_FORMAT),
    ("5MB", parse_line, b"{" + b" " * (5 * 1024 * 1024) + b"}", Reason.TOO_LARGE),
    ("5MB-str", parse_flow, "x" * (MAX_MESSAGE_BYTES + 1), Reason.TOO_LARGE),
    ("truncated-json", parse_flow, _flow("")[:-20], Reason.BAD_JSON),
    ("truncated-log-json", parse_log, APP[:40], Reason.BAD_JSON),
    ("nan-literal", parse_log, '{"ts": NaN}', Reason.BAD_JSON),
    ("json-array", parse_line, "[1, 2, 3]", Reason.NOT_AN_OBJECT),
    ("json-array-flow", parse_flow, '[{"ts": 1}]', Reason.NOT_AN_OBJECT),
    ("bare-number", parse_flow, "42", Reason.NOT_AN_OBJECT),
    ("bare-string", parse_log, '"hello"', Reason.NOT_AN_OBJECT),
    ("bare-true", parse_line, "true", Reason.NOT_AN_OBJECT),
    ("bare-1e999", parse_line, "1e999", Reason.UNKNOWN_FORMAT),
    ("1e999-count", parse_flow, _flow(', "bwd_packets": 1e999'), Reason.BAD_VALUE),
    ("1e999-unknown-key", parse_flow, _flow(', "whatever": 1e999'), None),
    ("1e999-then-lone-surrogate", parse_log, '{"x": 1e999, "ts": 1795000000000, "level": "info", "service": "\\ud800"}', Reason.BAD_JSON),
    ("1e999-ts", parse_flow, _flow("", ts="1e999"), Reason.BAD_VALUE),
    ("1e999-response-time", parse_log, '{"ts": 1795000000000, "level": "info", "service": "s", "response_time_ms": -1e999}', Reason.BAD_VALUE),
    ("nan-string", parse_flow, _flow(', "duration_ms": "NaN"'), Reason.BAD_VALUE),
    ("negative-count", parse_flow, _flow(', "bwd_bytes": -5'), Reason.BAD_VALUE),
    ("port-too-big", parse_flow, _flow(', "src_port": 65536'), Reason.BAD_VALUE),
    ("fractional-count", parse_flow, _flow(', "bwd_packets": 2.5'), Reason.BAD_VALUE),
    ("wrong-type-string", parse_flow, _flow("").replace('"fwd_packets": 10', '"fwd_packets": "ten"'), Reason.WRONG_TYPE),
    ("wrong-type-bool", parse_flow, _flow("").replace('"fwd_packets": 10', '"fwd_packets": true'), Reason.WRONG_TYPE),
    ("wrong-type-flags", parse_flow, _flow(', "flags": [1, 2]'), Reason.WRONG_TYPE),
    ("wrong-type-flag-bool", parse_flow, _flow(', "flags": {"syn": false}'), Reason.WRONG_TYPE),
    ("wrong-type-level", parse_log, '{"ts": 1795000000000, "level": 3, "service": "s"}', Reason.WRONG_TYPE),
    ("wrong-type-ts", parse_log, '{"ts": [1], "level": "info", "service": "s"}', Reason.WRONG_TYPE),
    ("bool-ts", parse_line, '{"ts": true, "level": "info", "service": "s"}', Reason.WRONG_TYPE),
    ("missing-flow-field", parse_flow, _flow("").replace(', "fwd_bytes": 1500', ""), Reason.MISSING_FIELD),
    ("missing-ts", parse_flow, "{" + _FLOW_BASE + "}", Reason.MISSING_FIELD),
    ("missing-service", parse_log, '{"ts": 1795000000000, "level": "info"}', Reason.MISSING_FIELD),
    ("null-level", parse_log, '{"ts": 1795000000000, "level": null, "service": "s"}', Reason.MISSING_FIELD),
    ("unknown-extra-fields", parse_flow, _flow(', "vlan": 12, "nested": {"a": [1, {}]}, "note": null'), None),
    ("unknown-extra-app", parse_line, '{"ts": 1795000000000, "level": "info", "service": "s", "trace": {"id": 1}}', None),
    ("bad-ip-range", parse_flow, _flow("").replace('"10.0.0.9"', '"999.1.1.1"'), Reason.BAD_IP),
    ("bad-ip-word", parse_flow, _flow("").replace('"10.0.0.5"', '"not-an-ip"'), Reason.BAD_IP),
    ("bad-ip-app", parse_log, '{"ts": 1795000000000, "level": "info", "service": "s", "src_ip": "1.2.3"}', Reason.BAD_IP),
    ("bad-protocol", parse_flow, _flow("").replace('"tcp"', '"carrier-pigeon"'), Reason.BAD_VALUE),
    ("bad-iso-ts", parse_flow, _flow("", ts='"yesterday"'), Reason.BAD_TIMESTAMP),
    ("huge-ts", parse_flow, _flow("", ts="99999999999999999999"), Reason.BAD_TIMESTAMP),
    ("future-ts", parse_flow, _flow("", ts=str(_FUTURE_MS)), Reason.TIME_OUT_OF_RANGE),
    ("future-iso-app", parse_line, '{"ts": "2026-12-23T12:00:00Z", "level": "info", "service": "s"}', Reason.TIME_OUT_OF_RANGE),
    ("ancient-iso", parse_flow, _flow("", ts='"1970-01-02T00:00:00Z"'), Reason.TIME_OUT_OF_RANGE),
    ("ancient-ms", parse_line, _flow("", ts="86400000"), Reason.TIME_OUT_OF_RANGE),
    ("cic-header-on-wire", parse_flow, "Flow ID" + ",x" * 84, Reason.UNKNOWN_FORMAT),
    ("csv-wrong-width", parse_flow, "1,2,3", Reason.UNKNOWN_FORMAT),
    ("apache-error-log", parse_log, "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6", Reason.BAD_JSON),
    ("not-bytes", parse_line, 12345, Reason.WRONG_TYPE),
]  # fmt: skip


@pytest.mark.parametrize(("parser", "raw", "expected"), [u[1:] for u in UGLY], ids=[u[0] for u in UGLY])
def test_ugly_input(parser, raw, expected: Reason | None) -> None:
    if expected is None:
        assert isinstance(parser(raw, now=NOW), Event)
        return
    with pytest.raises(ParseError) as info:
        parser(raw, now=NOW)
    assert info.value.reason is expected, info.value.detail
    assert not info.value.detail.startswith("unparseable input"), "reached the catch-all guard"
    assert len(info.value.detail) < 300  # echoed values are truncated


def test_bounds_none_accepts_old_and_future_times() -> None:
    assert parse_flow(_flow("", ts='"1999-01-01T00:00:00Z"'), now=NOW, bounds=None).ts.year == 1999
    assert parse_flow(_flow("", ts=str(_FUTURE_MS)), now=NOW, bounds=None).ts > NOW
    narrow = TimeBounds(max_future=timedelta(0), not_before=datetime(2026, 11, 1, tzinfo=UTC))
    assert _reason(parse_flow, _flow("", ts='"2026-10-31T00:00:00Z"'), bounds=narrow) is Reason.TIME_OUT_OF_RANGE
    with pytest.raises(ValueError):
        TimeBounds(not_before=datetime(2000, 1, 1))  # naive: refused when built, not on every event


def test_bytes_like_and_naive_now() -> None:
    line = b"Jun 14 15:16:01 combo k: m"
    naive_now = NOW.replace(tzinfo=None)
    for raw in (bytearray(line), memoryview(line), line.decode()):
        ev = parse_line(raw, now=naive_now)
        assert ev.ts == datetime(2026, 6, 14, 15, 16, 1, tzinfo=UTC) and ev.ts.tzinfo is not None


def test_detail_names_field_and_value() -> None:
    with pytest.raises(ParseError) as info:
        parse_flow(_flow("").replace('"10.0.0.5"', '"' + "z" * 500 + '"'), now=NOW)
    assert info.value.field == "src_ip"
    assert "src_ip" in info.value.detail and "zzzz" in info.value.detail
    assert len(info.value.detail) < 200


def _only_parse_errors(raw: bytes) -> None:
    try:
        parse_line(raw, now=NOW)
    except ParseError as exc:
        assert isinstance(exc.reason, Reason)
        assert not exc.detail.startswith("unparseable input"), exc.detail  # the catch-all guard is for bugs


def test_random_bytes_only_raise_parse_error() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        _only_parse_errors(bytes(rng.randrange(256) for _ in range(rng.randrange(301))))


def test_mutated_valid_messages_only_raise_parse_error() -> None:
    """Random bytes rarely get past UTF-8 decoding; mutants of valid messages reach the deeper checks."""
    rng = random.Random(7)
    seeds = [
        FLOW.encode(), APP.encode(),
        b"Dec 10 06:55:46 gate sshd[24200]: Failed password for invalid user webmaster from 198.51.100.186 port 38926 ssh2",
        b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 ruser= rhost=1.2.3.4 user=root",
        b'203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /a?q=1 HTTP/1.0" 200 2326 "http://ref/" "Mozilla/4.08" 0.1',
        b'{"log": "Jun 14 15:16:01 combo k: m"}',
        b"53,269,2,2,102,322" + b",1" * 72 + b",BENIGN",
    ]
    tokens = [b"1e999", b"NaN", b'"', b"{", b"}", b",", b":", b"-", b"999", b"\\", b" ", b"\x96", b"true", b"null"]
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(data) + 1)
            op = rng.randrange(3)
            if op == 0:
                del data[pos : pos + rng.randrange(1, 8)]
            elif op == 1:
                data[pos:pos] = rng.choice(tokens)
            else:
                data[pos:pos] = bytes([rng.randrange(32, 127)])
        _only_parse_errors(bytes(data))
