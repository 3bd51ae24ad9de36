"""Web probing predicates: what a request's path, agent and method say, on real scanner and crawler strings."""

from __future__ import annotations

import pytest

from features.web import is_scanner_agent, is_sensitive_path, is_static_path, is_unusual_method, path_only


@pytest.mark.parametrize("path", [
    "/.env", "/.git/config", "/.git/HEAD", "/app/.env.production", "/wp-config.php.bak", "/wp-config.php",
    "/phpmyadmin/index.php", "/server-status", "/backup.zip", "/site.sql", "/db.sql.gz", "/.aws/credentials",
    "/.ssh/id_rsa", "/cgi-bin/test-cgi", "/manager/html", "/actuator/env", "/administrator/", "/.htpasswd",
    "/%2e%65nv", "/%252egit/config", "/BACKUP/", "/web.config", "/phpinfo.php?x=1", "/backup-2020.zip",
    "/www.example.com.tar.gz", "/htdocs.rar",
])
def test_requests_for_secrets_backups_and_consoles_are_sensitive(path: str) -> None:
    assert is_sensitive_path(path)


@pytest.mark.parametrize("path", [
    "/", "/products/1234", "/category/garden?page=3", "/blog/summer-sale", "/static/app.3f2a.js", "/login",
    "/search?q=.env", "/search?q=backup+drive", "/account/orders", "/sitemap.xml", "/robots.txt",
    "/environment-friendly-bags", "/products/gitter-lamp", "/help/backup-your-account", None, "",
    # Archives are downloads on many sites; only backup-like names count.
    "/sitemap.xml.gz", "/self.logs/access.log.2018-12-01.gz", "/releases/v1.2.zip", "/website-assets.zip",
])
def test_pages_a_visitor_or_crawler_asks_for_are_not(path: str | None) -> None:
    assert not is_sensitive_path(path)


@pytest.mark.parametrize("ua", [
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)", "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "gobuster/3.6", "Fuzz Faster U Fool v2.1.0-dev", "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org)",
    "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91 Safari/537.36 "
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
])
def test_scanners_that_name_themselves_are_recognised(ua: str) -> None:
    assert is_scanner_agent(ua)


@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "Screaming Frog SEO Spider/20.4",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "curl/8.5.0",
    "python-requests/2.32.3", "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 5 subscribers)", None, "",
])
def test_browsers_crawlers_and_scripts_are_not_scanners(ua: str | None) -> None:
    assert not is_scanner_agent(ua)


def test_methods_and_static_assets() -> None:
    assert all(is_unusual_method(m) for m in ("TRACE", "TRACK", "PROPFIND", "DEBUG", "get\x00", "XYZZY"))
    assert not any(is_unusual_method(m) for m in ("GET", "head", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", None))
    assert all(is_static_path(p) for p in ("/static/app.js", "/img/logo.PNG?v=3", "/fonts/a.woff2"))
    assert not any(is_static_path(p) for p in ("/products/12", "/app.js.php", "/search?q=x.js", None))
    assert path_only("/a/b?x=1#frag") == "/a/b" and path_only("/a#f?x") == "/a"


def test_hostile_paths_and_agents_at_their_size_limits_get_an_answer() -> None:
    """Client text is cut to 8 KiB (paths) and 1 KiB (agents) before these run; none of it can make them fail."""
    for path in ("/" * 8192, "/." * 4096, "/a" * 4096 + ".env", "%25" * 2730, "/" + "x" * 8190 + ".bak",
                 "/.git" * 1638, "\x00\udcff/" * 2730):
        assert isinstance(is_sensitive_path(path), bool) and isinstance(is_static_path(path), bool)
    assert is_sensitive_path("/a" * 4096 + "/.env") and is_sensitive_path("/" + "x" * 8190 + ".bak")
    assert is_scanner_agent("x" * 1000 + "nikto") and not is_scanner_agent("\udcff" * 1024)
