"""Benign traffic: twelve components, each a seeded stream of sessions.

Each yields (session_start_ms, events) with non-decreasing starts and every event at or
after its session's start.

This module runs over 400 lines because the components' shares of `benign_eps` (below) are
tuned together and the components share the page, login and API helpers; split, one
calibration would span modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from urllib.parse import quote_plus

from ..events import LABEL_BENIGN
from .formats import (
    RawEvent,
    _access_ev,
    _app_ev,
    _eph,
    _flow_ev,
    _login_api_event,
    _lognorm,
    _product_id,
    _ssh_accepted,
    _ssh_failed,
    _sshd_ev,
    _tcp_flow,
    _typo,
    _weighted,
)
from .population import (
    _BLOG,
    _CAMPAIGNS,
    _CATEGORIES,
    _COLORS,
    _EXTERNAL_REFERERS,
    _HELP,
    _REFS,
    _SEARCH_CONFUSERS,
    _SEARCH_NORMAL,
    _SERVICES,
    _SERVICES_MEDIAN_MS,
    _SITE,
    _SORTS,
    _Ctx,
    _poisson_starts,
)
from .scans import robots_component

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
        path, med = rng.choice(("/promo/summer-sale-2024", "/products/old-catalog.pdf", "/apple-touch-icon.png",
                                "/en/home")), 0.01
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
    evs.append(_access_ev(int(t), ip, None, "GET", f"/login{nxt}", 200, int(_lognorm(rng, 9000, 0.2)), referer, ua,
                          _lognorm(rng, 0.02, 0.4), B))
    t += _lognorm(rng, 7000, 0.4)
    for _ in range(failures):
        evs.append(_access_ev(int(t), ip, account, "POST", "/login", 401, rng.randint(280, 340),
                              f"https://{_SITE}/login", ua, _lognorm(rng, 0.06, 0.3), B))
        t += _lognorm(rng, 6000, 0.5)
    evs.append(_access_ev(int(t), ip, account, "POST", "/login", 200, rng.randint(400, 700),
                          f"https://{_SITE}/login", ua, _lognorm(rng, 0.07, 0.3), B))
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
                        evs.append(_access_ev(int(ta), ip, user, "GET", apath, 304, 0, page_url, ua,
                                              _lognorm(rng, 0.002, 0.5), B))
                    else:
                        evs.append(_access_ev(int(ta), ip, user, "GET", apath, 200, int(_lognorm(rng, amed, 0.6)),
                                              page_url, ua, _lognorm(rng, 0.006, 0.7), B))
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
            unknown_product = path.startswith("/products/") and int(path.rsplit("/", 1)[1]) >= 5000
            status = 404 if unknown_product or rng.random() < 0.01 else 200
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
        msg = {500: "internal server error", 502: "bad gateway from upstream", 503: "db connection pool exhausted",
               504: "upstream timeout"}[st]
        rt = rng.uniform(5000, 30000) if st == 504 else _lognorm(rng, med * 3, 0.6)
        level = "error"
    else:
        rt = _lognorm(rng, med * (4.0 if incident else 1.0), 0.6)
        level = "warning" if st >= 400 else "info"
    return _app_ev(int(t), level, svc, msg, B, ip, response_time_ms=rt, status=st, src_ip=ip, user=user, method=method,
                   path=path)


def _api_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    rate = ctx.eps * _API_SHARE / _API_EVENTS_PER_SESSION
    for t0 in _poisson_starts(rng, ctx, rate):
        ip, account, _ua = ctx.pick_web_client(rng)
        evs: list[RawEvent] = []
        t = t0
        if account is not None and rng.random() < 0.5:
            evs.append(_login_api_event(rng, t, ip, account, ok=rng.random() > 0.03))
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
            msg = rng.choice(("database connection refused", "upstream timeout", "circuit breaker open",
                              "db connection pool exhausted"))
            evs.append(_app_ev(int(t), "error", svc, msg, B, user, response_time_ms=rng.uniform(2000, 30000),
                               user=user))
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
                src, dst = (rng.choice(pop.staff).ip if rng.random() < 0.8 else rng.choice(list(srv.values())),
                            srv["dns-01"])
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
                src, dst, port = (rng.choice((srv["api-01"], srv["web-01"], srv["web-02"], srv["auth-01"])),
                                  srv["db-01"], 5432)
            else:
                src, dst, port = rng.choice((srv["api-01"], srv["bastion"])), srv["auth-01"], 636
            fp = max(4, int(_lognorm(rng, 30, 1.0)))
            bp = max(4, int(fp * rng.uniform(0.8, 1.6)))
            ev = _tcp_flow(rng, ts, src, dst, port, fp, bp, fp * rng.randint(80, 400), bp * rng.randint(200, 1400),
                           _lognorm(rng, 900, 1.2), B)
        elif r < 0.92:  # intranet
            src = rng.choice(pop.staff).ip
            dst, port = rng.choice(((srv["api-01"], 8080), (srv["auth-01"], 443), (srv["web-01"], 443),
                                    (srv["backup-01"], 445)))
            fp = max(4, int(_lognorm(rng, 12, 0.9)))
            bp = max(4, int(fp * rng.uniform(1.0, 2.0)))
            ev = _tcp_flow(rng, ts, src, dst, port, fp, bp, fp * rng.randint(60, 300), bp * rng.randint(200, 1400),
                           _lognorm(rng, 700, 1.0), B)
        else:  # ntp / syslog / kafka between servers
            kind = rng.random()
            src = rng.choice(list(srv.values()))
            if kind < 0.4:
                ev = _flow_ev(ts, src, 123, rng.choice(pop.external_dsts), 123, "udp", rng.uniform(5, 40),
                              1, 1, 76, 76, B)
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
            ev = _tcp_flow(rng, int(t), pop.backup_ip, pop.offsite_ip, 443, fp, fp // 2, total, (fp // 2) * 52,
                           dur, B, rst_p=0)
        yield t, [ev]


def _ssh_session_flow(
    rng: random.Random, ts: int, src: str, sport: int, dst: str, dur_ms: float, label: str,
) -> RawEvent:
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
                src, host = srv["bastion"], rng.choice(("web-01", "web-02", "api-01", "db-01", "auth-01", "dns-01",
                                                        "backup-01"))
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
                evs.append(_login_api_event(rng, t, c.ip, c.account, ok=False))
                t += rng.uniform(3000, 12000)
            evs.append(_login_api_event(rng, t, c.ip, c.account, ok=True))
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
    ("robots", robots_component),  # SEO crawlers, site audits, feed readers (features.simulation.scans)
)
