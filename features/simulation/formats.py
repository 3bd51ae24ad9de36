"""Generated records: the labels, `RawEvent`, the four wire formats and small random helpers."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from functools import lru_cache

from ..events import LABEL_BENIGN

__all__ = ["SCENARIO_LABELS", "ATTACK_LABELS", "TOPIC_LOGS", "TOPIC_FLOWS", "RawEvent"]

SCENARIO_LABELS: tuple[str, ...] = (
    LABEL_BENIGN,
    "brute_force",
    "password_spraying",
    "credential_stuffing",
    "port_scan",
    "ddos",
    "sql_injection",
    "xss",
    "path_traversal",
    "web_scan",
)
ATTACK_LABELS: tuple[str, ...] = SCENARIO_LABELS[1:]

TOPIC_LOGS = "logs"
TOPIC_FLOWS = "flows"


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One raw record exactly as a shipper would produce it, with its ground truth."""

    topic: str  # "logs" or "flows" (the raw topic family it belongs on)
    ts_ms: int  # event time, integer ms since epoch (UTC)
    payload: bytes  # exactly what a shipper would produce
    label: str  # one of SCENARIO_LABELS
    actor: str  # the acting source: IP (or user for app-only events), for evaluation


# --------------------------------------------------------------------------------------
# Wire formats
# --------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=8192)
def _syslog_ts(sec: int) -> str:
    """RFC 3164 timestamp, no year, day padded with a space: `Jan  5 09:00:01`."""
    t = time.gmtime(sec)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:>2} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


@lru_cache(maxsize=8192)
def _clf_ts(sec: int) -> str:
    """Common-log timestamp: `05/Jan/2026:09:00:01 +0000`."""
    t = time.gmtime(sec)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _sshd_ev(ts: int, host: str, pid: int, msg: str, label: str, actor: str) -> RawEvent:
    payload = f"{_syslog_ts(ts // 1000)} {host} sshd[{pid}]: {msg}".encode()
    return RawEvent(TOPIC_LOGS, ts, payload, label, actor)


def _ssh_failed(user: str, valid: bool, ip: str, port: int) -> str:
    who = user if valid else f"invalid user {user}"
    return f"Failed password for {who} from {ip} port {port} ssh2"


def _ssh_accepted(user: str, ip: str, port: int, method: str = "password") -> str:
    return f"Accepted {method} for {user} from {ip} port {port} ssh2"


def _access_ev(
    ts: int,
    ip: str,
    user: str | None,
    method: str,
    path: str,
    status: int,
    nbytes: int,
    referer: str | None,
    ua: str,
    rt_s: float,
    label: str,
    actor: str | None = None,
) -> RawEvent:
    """Combined log format plus nginx `$request_time` appended."""
    payload = (
        f'{ip} - {user or "-"} [{_clf_ts(ts // 1000)}] "{method} {path} HTTP/1.1" '
        f'{status} {nbytes} "{referer or "-"}" "{ua}" {rt_s:.3f}'
    ).encode()
    return RawEvent(TOPIC_LOGS, ts, payload, label, actor or ip)


def _app_ev(
    ts: int,
    level: str,
    service: str,
    message: str,
    label: str,
    actor: str,
    *,
    response_time_ms: float | None = None,
    status: int | None = None,
    src_ip: str | None = None,
    user: str | None = None,
    method: str | None = None,
    path: str | None = None,
) -> RawEvent:
    obj: dict[str, object] = {"ts": ts, "level": level, "service": service, "message": message}
    if response_time_ms is not None:
        obj["response_time_ms"] = round(float(response_time_ms), 1)
    if status is not None:
        obj["status"] = status
    if src_ip is not None:
        obj["src_ip"] = src_ip
    if user is not None:
        obj["user"] = user
    if method is not None:
        obj["method"] = method
    if path is not None:
        obj["path"] = path
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return RawEvent(TOPIC_LOGS, ts, payload, label, actor)


def _flow_ev(
    ts: int,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    proto: str,
    dur_ms: float,
    fp: int,
    bp: int,
    fb: int,
    bb: int,
    label: str,
    *,
    syn: int = 0,
    ack: int = 0,
    fin: int = 0,
    rst: int = 0,
    psh: int = 0,
    urg: int = 0,
) -> RawEvent:
    payload = (
        f'{{"ts":{ts},"src_ip":"{src}","src_port":{int(sport)},"dst_ip":"{dst}","dst_port":{int(dport)},'
        f'"protocol":"{proto}","duration_ms":{int(dur_ms)},"fwd_packets":{int(fp)},"bwd_packets":{int(bp)},'
        f'"fwd_bytes":{int(fb)},"bwd_bytes":{int(bb)},"flags":{{"syn":{int(syn)},"ack":{int(ack)},'
        f'"fin":{int(fin)},"rst":{int(rst)},"psh":{int(psh)},"urg":{int(urg)}}}}}'
    ).encode()
    return RawEvent(TOPIC_FLOWS, ts, payload, label, src)


def _tcp_flow(
    rng: random.Random,
    ts: int,
    src: str,
    dst: str,
    dport: int,
    fp: int,
    bp: int,
    fb: int,
    bb: int,
    dur_ms: float,
    label: str,
    *,
    rst_p: float = 0.02,
    sport: int | None = None,
) -> RawEvent:
    """An ordinary completed TCP connection."""
    fp = max(3, int(fp))
    bp = max(2, int(bp))
    fb = max(fb, fp * 40)
    bb = max(bb, bp * 40)
    rst = 1 if rng.random() < rst_p else 0
    fin = 0 if rst else 2
    data_pkts = max(1, (fp + bp) // 3)
    return _flow_ev(
        ts, src, sport if sport is not None else _eph(rng), dst, dport, "tcp", dur_ms, fp, bp, fb, bb, label,
        syn=1, ack=fp + bp - 1, fin=fin, rst=rst, psh=rng.randint(1, data_pkts),
    )


def _login_api_event(
    rng: random.Random,
    t: float,
    ip: str,
    user: str | None,
    ok: bool,
    label: str = LABEL_BENIGN,
    actor: str | None = None,
) -> RawEvent:
    """An auth-api login record (JSON application log), succeeded or failed."""
    if ok:
        return _app_ev(int(t), "info", "auth-api", "login succeeded", label, actor or ip,
                       response_time_ms=_lognorm(rng, 35, 0.5), status=200, src_ip=ip, user=user, method="POST",
                       path="/api/login")
    return _app_ev(int(t), "warning", "auth-api", "login failed: invalid credentials", label, actor or ip,
                   response_time_ms=_lognorm(rng, 40, 0.5), status=401, src_ip=ip, user=user, method="POST",
                   path="/api/login")


# --------------------------------------------------------------------------------------
# Small random helpers
# --------------------------------------------------------------------------------------


def _rng(seed: int, name: str) -> random.Random:
    # The seed string keeps the generator's former module name: another string would change every run.
    return random.Random(f"streamguard.scenarios:{seed}:{name}")


def _eph(rng: random.Random) -> int:
    return rng.randint(32768, 60999)


def _lognorm(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _weighted(rng: random.Random, items: tuple[tuple[object, float], ...]) -> object:
    r = rng.random() * sum(w for _, w in items)
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word + word[-1]
    i = rng.randrange(len(word) - 1)
    out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return out if out != word else word + "1"


def _public_ip(rng: random.Random) -> str:
    """A random unicast address outside private, shared, loopback, link-local and documentation ranges."""
    first = rng.choice(_PUBLIC_FIRST_OCTETS)
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _cgnat_ip(rng: random.Random) -> str:
    return f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


_PUBLIC_FIRST_OCTETS: tuple[int, ...] = tuple(
    o for o in range(1, 224) if o not in {10, 100, 127, 169, 172, 192, 198, 203}
)


def _product_id(rng: random.Random) -> int:
    return min(4999, int(rng.paretovariate(0.8) * 30))
