"""Web scanners (the `web_scan` attack) and the benign robots that look most like them.

The scanners follow what real tools leave in access logs: nikto's database of known files
(cgi-bin scripts, admin consoles, backups, odd methods, its own User-Agent), wordlist brute
forcing of directories (dirbuster, gobuster, ffuf: mostly 404, HEAD or GET, fast), crawl-then-
fuzz scanners (w3af, acunetix, ZAP: the site's real pages first, then parameters with attack
payloads, usually a browser User-Agent), and the slow internet-wide probe for exposed secrets
(`/.env`, `/.git/config`, `/wp-config.php.bak`, a few a minute), and the hammering of one
console or secret (`/phpmyadmin/` a hundred times). The hard negatives are what
a shop's log also holds: SEO crawlers walking thousands of product pages (some gone: 404),
a staff member's site audit (a link checker at several pages a second, every broken link a
404), and feed readers. None of them asks for secrets, names a scanner or sends odd methods.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import quote

from ..events import LABEL_BENIGN
from .formats import RawEvent, _access_ev, _lognorm, _rng, _weighted
from .population import _BLOG, _BROWSER_UAS, _CATEGORIES, _Attack, _Ctx, _poisson_starts

__all__: list[str] = []

_NIKTO_UA = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:{test:06d})"
_DIR_UAS = ("gobuster/3.6", "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
            "Fuzz Faster U Fool v2.1.0-dev", "Mozilla/5.0 (compatible; wfuzz/3.1.0)")
# Known files and consoles scanners ask for (nikto's and the common wordlists' favourites).
_SENSITIVE = (
    "/.env", "/.env.bak", "/.git/config", "/.git/HEAD", "/.svn/entries", "/.htpasswd", "/.htaccess", "/.DS_Store",
    "/wp-config.php.bak", "/wp-config.php~", "/config.php.old", "/backup.zip", "/backup.tar.gz", "/site.sql",
    "/db.sql", "/dump.sql", "/www.zip", "/phpinfo.php", "/info.php", "/server-status", "/server-info",
    "/phpmyadmin/", "/pma/", "/adminer.php", "/administrator/", "/manager/html", "/actuator/env", "/.aws/credentials",
    "/.ssh/id_rsa", "/cgi-bin/test-cgi", "/cgi-bin/printenv", "/cgi-bin/php", "/xmlrpc.php", "/web.config",
    "/WEB-INF/web.xml", "/elmah.axd", "/console/", "/jmx-console/", "/.npmrc", "/docker-compose.yml",
)
_WORDS = (
    "admin", "administrator", "login", "images", "img", "css", "js", "includes", "include", "uploads", "upload",
    "files", "backup", "backups", "old", "new", "test", "tmp", "temp", "dev", "staging", "api", "v1", "v2", "cgi-bin",
    "scripts", "private", "secret", "config", "conf", "data", "db", "database", "sql", "logs", "log", "portal",
    "dashboard", "panel", "cpanel", "webmail", "mail", "forum", "shop", "store", "cart", "blog", "wp", "wordpress",
    "joomla", "drupal", "phpmyadmin", "server-status", "console", "manager", "status", "debug", "install", "setup",
    "user", "users", "account", "accounts", "download", "downloads", "docs", "doc", "help", "support", "search",
    "assets", "static", "media", "vendor", "lib", "src", "app", "web", "www", "home", "main", "index", "default",
)
_EXTS = ("", "", "", ".php", ".html", ".asp", ".aspx", ".jsp", ".bak", ".old", ".txt", ".zip")
_ODD_METHODS = ("TRACE", "TRACK", "PROPFIND", "DEBUG", "SEARCH", "OPTIONS", "PUT", "MKCOL")
_FUZZ = ("'", "\"", "<script>alert(1)</script>", "../../../../etc/passwd", "1 OR 1=1", "%00", "${jndi:ldap://x/a}",
         ";id", "|id", "{{7*7}}")


def _fuzz(rng: random.Random) -> str:
    """A fuzzing payload as it reaches the log: percent-encoded, sometimes with its brackets left bare."""
    p = quote(rng.choice(_FUZZ), safe="")
    return p.replace("%3C", "<").replace("%3E", ">") if rng.random() < 0.3 else p


def _status(rng: random.Random, path: str) -> int:
    """What a shop answers a probe: mostly 404, forbidden for server internals, a few that exist."""
    if path in ("/", "/robots.txt", "/login", "/search") or path.startswith(("/products/", "/category/")):
        return 200
    if path.startswith(("/.ht", "/server-", "/.git", "/.svn")):
        return 403
    return int(_weighted(rng, ((404, 0.86), (403, 0.06), (400, 0.03), (301, 0.03), (200, 0.02))))  # type: ignore[call-overload]


def _nikto(rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    test = rng.randint(0, 7000)
    for _ in range(n):
        test += 1
        r = rng.random()
        if r < 0.45:
            path = rng.choice(_SENSITIVE)
        elif r < 0.85:
            path = f"/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}{rng.choice(_EXTS)}"
        else:
            path = f"/{rng.choice(_WORDS)}.php?{rng.choice(('id', 'file', 'page', 'dir'))}={_fuzz(rng)}"
        method = rng.choice(_ODD_METHODS) if rng.random() < 0.06 else ("HEAD" if rng.random() < 0.2 else "GET")
        yield method, path, _NIKTO_UA.format(test=test)


def _dirbust(rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    ua = rng.choice(_DIR_UAS + _BROWSER_UAS[:2])  # ffuf and gobuster users often set a browser agent
    method = "HEAD" if rng.random() < 0.3 else "GET"
    words = list(_WORDS)
    rng.shuffle(words)
    for i in range(n):
        base = words[i % len(words)]
        ext = _EXTS[(i // len(words)) % len(_EXTS)]
        prefix = "" if i < len(words) * len(_EXTS) else f"/{rng.choice(_WORDS)}"
        yield method, f"{prefix}/{base}{ext}", ua


def _crawl_fuzz(rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    ua = rng.choice(_BROWSER_UAS)
    crawl = max(10, n // 5)
    for i in range(n):
        if i < crawl:
            r = rng.random()
            path = ("/" if r < 0.1 else f"/products/{rng.randint(1, 4999)}" if r < 0.6
                    else f"/category/{rng.choice(_CATEGORIES)}?page={rng.randint(1, 5)}")
            yield "GET", path, ua
        elif rng.random() < 0.3:
            yield "GET", rng.choice(_SENSITIVE), ua
        else:
            target = rng.choice(("/search?q=", "/products?id=", "/login?next=", f"/{rng.choice(_WORDS)}?file="))
            yield ("POST" if rng.random() < 0.15 else "GET"), target + _fuzz(rng), ua


def _secrets_probe(rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    ua = rng.choice(_BROWSER_UAS + ("Mozilla/5.0 (compatible; l9explore/1.2.2)", "python-requests/2.31.0"))
    for _ in range(n):
        yield "GET", rng.choice(_SENSITIVE), ua


def _hammer(rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    ua = rng.choice(_BROWSER_UAS + ("-", "Mozilla/5.0"))
    target = rng.choice(("/phpmyadmin/", "/pma/", "/xmlrpc.php", "/.env", "/manager/html", "/actuator/env"))
    for _ in range(n):
        yield "GET", target, ua


# (tool, requests per second before `attack_intensity`, its path generator). Slower than the
# tools run by default (nikto and gobuster manage tens a second), so a run's
# attack share stays near the other scenarios'; `attack_intensity` scales them.
_TOOLS = (("nikto", (1.5, 6.0), _nikto), ("dirbust", (2.0, 8.0), _dirbust),
          ("crawl_fuzz", (0.8, 3.0), _crawl_fuzz), ("secrets", (0.15, 0.5), _secrets_probe),
          ("hammer", (0.2, 1.5), _hammer))


def web_scan(ctx: _Ctx, rng: random.Random, a: _Attack) -> list[RawEvent]:
    """One scanner host: a tool per attacker (nikto, a directory brute-forcer, crawl-and-fuzz, a secrets probe,
    one console or secret asked for again and again)."""
    ip = a.actors[0]
    _tool, (lo, hi), paths = _TOOLS[(a.index + rng.randrange(len(_TOOLS))) % len(_TOOLS)]
    rate = rng.uniform(lo, hi) * ctx.intensity
    span_s = (a.end_ms - a.start_ms) / 1000.0
    evs: list[RawEvent] = []
    t = float(a.start_ms)
    for method, path, ua in paths(rng, max(1, int(rate * span_s * 1.2))):
        if t >= a.end_ms:
            break
        status = _status(rng, path.split("?", 1)[0])
        nbytes = 0 if method == "HEAD" else int(_lognorm(rng, 14000, 0.5)) if status == 200 else rng.randint(150, 600)
        evs.append(_access_ev(int(t), ip, None, method, path, status, nbytes, None, ua, _lognorm(rng, 0.01, 0.6),
                              a.label))
        t += rng.expovariate(rate) * 1000.0
    return evs


# -- benign robots ---------------------------------------------------------------------------

_SEO_BOTS = (("54.36.148", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
             ("185.191.171", "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"),
             ("17.241.219", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like "
                            "Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"))
_AUDIT_UAS = ("Screaming Frog SEO Spider/20.4", "W3C-checklink/5.0.0 libwww-perl/6.72",
              "Mozilla/5.0 (compatible; SiteAuditBot/0.97; +http://www.semrush.com/bot.html)")
_FEED_UAS = ("Feedly/1.0 (+http://www.feedly.com/fetcher.html; 5 subscribers)",
             "NewsBlur Feed Fetcher - 12 subscribers - https://www.newsblur.com/site/1", "Tiny Tiny RSS/23.04")
_ROBOTS_SHARE = 0.03  # of benign_eps, all robots together


@lru_cache(maxsize=16)
def _robot_ips(ctx_seed: int, taken: frozenset[str]) -> tuple[tuple[str, str], ...]:
    rng = _rng(ctx_seed, "robots:ips")
    out = []
    for prefix, ua in _SEO_BOTS:
        for _ in range(2):
            ip = f"{prefix}.{rng.randint(1, 254)}"
            if ip not in taken:
                out.append((ip, ua))
    return tuple(out)


def _seo_path(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.65:
        return f"/products/{rng.randint(1, 6500)}"  # catalogue ids above 5000 are gone: 404
    if r < 0.85:
        return f"/category/{rng.choice(_CATEGORIES)}?page={rng.randint(1, 40)}"
    if r < 0.97:
        return f"/blog/{rng.choice(_BLOG)}"
    return rng.choice(("/robots.txt", "/sitemap.xml", "/sitemap-products-1.xml"))


def _page(rng: random.Random, path: str) -> tuple[int, int]:
    gone = path.startswith("/products/") and int(path.rsplit("/", 1)[1]) > 5000
    if gone or rng.random() < 0.02:
        return 404, rng.randint(1100, 1800)
    return (304, 0) if rng.random() < 0.1 else (200, int(_lognorm(rng, 17000, 0.5)))


def robots_component(ctx: _Ctx, rng: random.Random) -> Iterator[tuple[float, list[RawEvent]]]:
    """SEO crawlers, a staff site audit and feed readers: many pages, some 404s, never a probe."""
    taken = frozenset(ctx.pop.source_ips())
    bots = _robot_ips(ctx.cfg.seed, taken)
    rate = ctx.eps * _ROBOTS_SHARE / 150.0  # sessions per second; a session averages ~150 requests
    for t0 in _poisson_starts(rng, ctx, rate):
        evs: list[RawEvent] = []
        t = t0
        kind = rng.random()
        if kind < 0.6 and bots:  # an SEO crawler's visit: hundreds of pages, 1-3 a second
            ip, ua = rng.choice(bots)
            gap, n = (300.0, 1000.0), rng.randint(80, 300)
            pick = _seo_path
        elif kind < 0.8:  # a staff member's site audit: every link, several a second
            staff = rng.choice(ctx.pop.staff)
            ip, ua = staff.ip, rng.choice(_AUDIT_UAS)
            gap, n = (80.0, 400.0), rng.randint(150, 400)
            pick = _seo_path
        else:  # feed readers poll the blog's feeds
            ip, ua = f"52.{rng.randint(0, 95)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", rng.choice(_FEED_UAS)
            gap, n = (20_000.0, 90_000.0), rng.randint(2, 6)

            def pick(r: random.Random) -> str:
                return r.choice(("/blog/feed.xml", "/blog/rss", "/feed.xml"))
        for _ in range(n):
            path = pick(rng)
            status, nbytes = _page(rng, path) if not path.endswith(("feed.xml", "rss")) else (200, 24000)
            evs.append(_access_ev(int(t), ip, None, "GET", path, status, nbytes, None, ua, _lognorm(rng, 0.04, 0.5),
                                  LABEL_BENIGN))
            t += rng.uniform(*gap)
        yield t0, evs
