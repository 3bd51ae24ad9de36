"""Syslog lines (RFC 3164 or rsyslog ISO stamps): sshd/PAM/su authentication events, anything else as app."""

from __future__ import annotations

import re
from datetime import datetime

from ..errors import ParseError, Reason
from ..events import AuthOutcome, Event, EventKind
from ._common import check_port, split_remote
from ._time import MONTHS, TimeBounds, check_bounds, parse_iso, syslog_ts

__all__ = ["parse_syslog"]

# Optional <PRI> (lines received over the network keep it), then the stamp, the host, and the rest.
_RFC3164 = re.compile(
    r"(?:<\d{1,3}>)?(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(?P<day>\d{1,2}) "
    r"(?P<hh>\d{2}):(?P<mi>\d{2}):(?P<ss>\d{2})(?:\.(?P<frac>\d{1,6}))? +(?P<host>\S+)(?: +(?P<rest>.*))?",
    re.S,
)
_ISO = re.compile(
    r"(?:<\d{1,3}>)?(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|z|[+-]\d{2}:?\d{2})?)"
    r" +(?P<host>\S+)(?: +(?P<rest>.*))?",
    re.S,
)
# The tag is loosely defined in practice: `sshd[1]`, `sshd(pam_unix)[1]`, `logrotate`, even `syslogd 1.4.1`.
_TAG = re.compile(r"(?P<tag>[^:\[\s][^:\[]{0,63}?)(?:\[(?P<pid>[^\]]{0,16})\])?: ?(?P<msg>.*)", re.S)

# sshd writes the client-chosen user name into the middle of its lines, then its own suffix:
# ` from <addr> port <port> ssh2`, maybe `: <key type> <fingerprint>` or ` [preauth]`. A user
# name such as `admin from 10.9.9.9 port 22 ssh2` must not move the blame, so the patterns are
# matched against the whole message with a greedy user name: the address is taken from the
# last ` from ` after which the rest of the line is sshd's suffix (fail2ban's sshd filter is
# anchored at the end of the line for the same reason). sshd escapes control characters in
# what it logs, so the suffix it appends is always the end of its line.
_SUFFIX = r" from (?P<addr>\S+)(?: port (?P<port>\d{1,5}))?(?: ssh\d?)?(?:: [^ ]+(?: [^ ]+)?)?(?: \[preauth\])?"
_FAILED = re.compile(r"Failed \S+ for (?P<invalid>invalid user )?(?P<user>.*)" + _SUFFIX, re.S)
_ACCEPTED = re.compile(r"Accepted \S+ for (?P<user>.*)" + _SUFFIX, re.S)
_INVALID = re.compile(r"[Ii]nvalid user (?P<user>.*)" + _SUFFIX, re.S)
# PAM (pam_unix): `authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=1.2.3.4  user=root`,
# possibly after a `pam_unix(sshd:auth): ` prefix. `ruser` (the remote user an rlogin/rsh client
# claims) comes before `rhost` and the user name after it, and both are the client's: the
# address is `rhost` in pam_unix's fixed field order, and a line in which client text could
# have put another `rhost=` before the real one is ambiguous.
_PAM_FAILURE = re.compile(r"authentication failure;(?P<kv>.*)", re.S)
_PAM_FIELDS = re.compile(
    r"\s*logname=\S* uid=\d* euid=\d* tty=\S* ruser=(?P<ruser>.*?) rhost=(?P<rhost>\S*)(?:\s+user=(?P<user>.*))?", re.S)
_KV_RHOST = re.compile(r"(?:^|\s)rhost=(?P<v>\S*)")
_KV_USER = re.compile(r"(?:^|\s)user=(?P<v>\S*)")  # the (?:^|\s) keeps `ruser=` out
_SESSION = re.compile(r"session (?:opened|closed) for user (?P<user>[^\s(]+)")
_CHECK_PASS = "check pass; user unknown"
# klogind: `Authentication failed from 163.27.187.39 (163.27.187.39): Software caused connection abort`
_AUTH_FAILED_FROM = re.compile(r"Authentication failed from (?P<addr>[^\s(]+)")


def parse_syslog(text: str, *, now: datetime, bounds: TimeBounds | None, year: int | None) -> Event | None:
    """One stripped syslog line to an Event; None when the text is not syslog-shaped at all."""
    m = _RFC3164.fullmatch(text)
    if m is not None:
        frac = m["frac"]
        ts = syslog_ts(
            MONTHS[m["mon"]], int(m["day"]), int(m["hh"]), int(m["mi"]), int(m["ss"]),
            int(frac.ljust(6, "0")) if frac else 0, now=now, year=year,
        )  # fmt: skip
    else:
        m = _ISO.fullmatch(text)
        if m is None:
            return None
        ts = parse_iso(m["ts"])
    check_bounds(ts, now, bounds)
    host = m["host"]
    rest = m["rest"] or ""
    t = _TAG.fullmatch(rest)
    if t is None:
        service, msg = None, rest
    else:
        tag = t["tag"].strip()
        # `sshd(pam_unix)` is program `sshd` through module pam_unix.
        service = tag.split("(", 1)[0].strip() or tag
        msg = t["msg"].strip()
    auth = _auth_event(msg, ts=ts, host=host, service=service)
    if auth is not None:
        return auth
    return Event(kind=EventKind.APP, ts=ts, source="syslog", host=host, service=service, message=msg, level=None)


def _pam_peer(kv: str) -> tuple[str | None, str | None]:
    """(rhost, user) of a PAM authentication failure; raises `ambiguous` when client text could have moved rhost."""
    rhosts = len(_KV_RHOST.findall(kv))
    if f := _PAM_FIELDS.fullmatch(kv):
        if f["ruser"] and rhosts > 1:
            raise ParseError(Reason.AMBIGUOUS, "PAM line with several rhost= fields after a remote user name; "
                             "the client may have written one of them", field="rhost")
        user = f["user"]
        return f["rhost"], user.strip() if user else None
    # Another PAM module's field order: only a single rhost= is trusted.
    if rhosts > 1:
        raise ParseError(Reason.AMBIGUOUS, "PAM line with several rhost= fields", field="rhost")
    r = _KV_RHOST.search(kv)
    u = _KV_USER.search(kv)
    return (r["v"] if r else None), (u["v"] if u else None)


def _auth_event(msg: str, *, ts: datetime, host: str, service: str | None) -> Event | None:
    """The authentication event a message reports, or None if it reports none."""
    outcome: AuthOutcome
    user: str | None = None
    addr: str | None = None
    port: str | None = None
    if m := _FAILED.fullmatch(msg):
        outcome = AuthOutcome.INVALID_USER if m["invalid"] else AuthOutcome.FAILURE
        user, addr, port = m["user"], m["addr"], m["port"]
    elif m := _ACCEPTED.fullmatch(msg):
        outcome = AuthOutcome.SUCCESS
        user, addr, port = m["user"], m["addr"], m["port"]
    elif m := _INVALID.fullmatch(msg):
        outcome = AuthOutcome.INVALID_USER
        user, addr, port = m["user"], m["addr"], m["port"]
    elif m := _SESSION.search(msg):
        outcome = AuthOutcome.SESSION
        user = m["user"]
    elif m := _PAM_FAILURE.search(msg):
        outcome = AuthOutcome.FAILURE
        addr, user = _pam_peer(m["kv"])
    elif _CHECK_PASS in msg:
        # PAM's companion to the failure line that follows it: a failure, but with no peer.
        outcome = AuthOutcome.FAILURE
    elif m := _AUTH_FAILED_FROM.match(msg):
        outcome = AuthOutcome.FAILURE
        addr = m["addr"]
    else:
        return None
    src_ip, src_host = split_remote(addr, "rhost") if addr else (None, None)
    return Event(
        kind=EventKind.AUTH,
        ts=ts,
        source="sshd",
        host=host,
        service=service,
        user=user or None,
        auth_outcome=outcome,
        src_ip=src_ip,
        src_host=src_host,
        src_port=check_port(int(port), "port") if port else None,
    )

