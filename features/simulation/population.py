"""What a run is made of: its config, the vocabulary, and the plan (population, attacks, incidents).

This module runs over 400 lines because of the vocabulary tables (names, user agents,
queries, attacked user names), which the benign and attack generators share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from .formats import ATTACK_LABELS, _cgnat_ip, _poisson, _public_ip, _rng

__all__ = ["ScenarioConfig"]

# Documentation ranges (RFC 5737): only attackers ever come from these.
_ATTACKER_NETS: tuple[str, ...] = ("203.0.113", "198.51.100", "192.0.2")


@dataclass(frozen=True)
class ScenarioConfig:
    """What to generate. Same config -> byte-identical output."""

    seed: int = 0
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    duration_s: float = 600.0
    benign_eps: float = 40.0  # average benign events per second (all kinds together)
    attacks: tuple[str, ...] = ATTACK_LABELS
    attack_intensity: float = 1.0  # scales attack event rates
    attackers_per_scenario: int = 2  # distinct attacking sources per scenario (ddos: one campaign of many bots)
    allowlisted_attacker: str | None = None  # if set (and brute_force is on), one brute_force attacker uses this IP


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
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 "
    "Mobile Safari/537.36",
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
_CATEGORIES = ("shoes", "electronics", "home-kitchen", "outdoor", "toys", "books", "beauty", "sports", "garden",
               "office")
_SORTS = ("price_asc", "price_desc", "newest", "rating", "relevance")
_REFS = ("home", "search", "category", "recs", "cart", "email")
_COLORS = ("black", "white", "red", "navy", "green", "grey")
_CAMPAIGNS = ("winter_sale", "new_arrivals", "weekly_digest", "black_friday")
_HELP = ("shipping", "returns", "payment-methods", "contact", "size-guide", "warranty")
_BLOG = ("how-to-choose-running-shoes", "best-gifts-2025", "coffee-brewing-guide", "home-office-setup",
         "spring-cleaning-tips")
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
        start = start.replace(tzinfo=UTC)
    delta = start - datetime(1970, 1, 1, tzinfo=UTC)
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
    people = rng.sample([(first, last) for first in _FIRST for last in _LAST], 60 + 30 + 400)
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

    nat_users = tuple(f"{first}.{last}@partner.example" for first, last in people[60:90])
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
