"""What a web request's path, user agent and method say about probing: sensitive files, scanner tools, odd methods.

Every input here is written by the client, so every match is anchored or a plain alternation of
literal tokens over text already cut to its field's limit (`Event`): no pattern can backtrack,
and the cost is linear in at most 8 KiB. The lists follow what web scanners are known to ask
for and how they name themselves (CrowdSec's `http-sensitive-files`, `http-bad-user-agent` and
`http-probing` scenarios cover the same ground); they are evidence for the model and the
healing rule, not verdicts on their own: a site's own admin opening `/wp-admin/` matches too.
"""

from __future__ import annotations

import re

from .entities import decode_path

__all__ = ["is_static_path", "is_sensitive_path", "is_scanner_agent", "is_unusual_method", "path_only"]

# Files and places a probe asks for and a visitor never does: secrets, repositories, backups,
# server internals, admin consoles and installers. Matched on the decoded, lower-cased path.
_SENSITIVE = re.compile(
    r"(?:^|/)(?:"
    r"\.env(?:\.[a-z]+)?$|\.git(?:/|$)|\.svn(?:/|$)|\.hg(?:/|$)|\.bzr(?:/|$)|\.ds_store$|\.htpasswd$|\.htaccess$"
    r"|\.aws(?:/|$)|\.ssh(?:/|$)|id_[rd]sa$|\.bash_history$|\.npmrc$|\.dockerenv$|docker-compose\.ya?ml$"
    r"|wp-config\.php|web\.config$|config\.(?:php|inc|bak|old|json|ya?ml)$|configuration\.php|settings\.php"
    r"|local\.xml$|web\.xml$|phpinfo\.php|info\.php$|test\.php$|server-status|server-info|elmah\.axd|trace\.axd"
    r"|phpmyadmin|pma(?:/|$)|myadmin|adminer|mysqladmin|sqladmin|dbadmin|manager/html|jmx-console|web-console"
    r"|actuator(?:/|$)|wp-admin/(?:install|setup-config)|install\.php$|setup\.php$|administrator(?:/|$)"
    r"|cgi-bin/|shell\.php$|cmd\.php$|c99\.php$|r57\.php$|eval-stdin\.php$|xmlrpc\.php$"
    r"|[^/]*\.(?:bak|old|orig|save|swp|sql|sql\.(?:gz|zip|bz2|tar)|dump|db|sqlite|mdb|pem|key)$"
    # An archive is a download on many sites (a data set, a release); only backup-like names
    # (`backup.zip`, `www.example.com.tar.gz`, `htdocs.rar`) are what scanners guess at.
    r"|(?:backups?|bak|site|www|web|wwwroot|htdocs|public_html|html|db|database|dump|old|archive)(?:[._-][^/]*)?"
    r"\.(?:zip|tar|tar\.gz|tgz|rar|7z|gz|bz2)$"
    r"|backups?(?:/|$)|dump(?:/|$)"
    r")"
)
# Tools that name themselves in the User-Agent header. A careful attacker changes it; most do not.
_SCANNER_AGENTS = re.compile(
    r"nikto|sqlmap|nmap|masscan|zgrab|w3af|acunetix|netsparker|nessus|openvas|dirbuster|gobuster|dirb/|wfuzz"
    r"|ffuf|fuzz faster|nuclei|wpscan|whatweb|skipfish|arachni|appscan|webinspect|burp|zap/|owasp zap|jorgee"
    r"|zmeu|morfeus|hydra|havij|commix|feroxbuster|dirsearch|wapiti|vega/|paros|grabber|xsser|joomscan|droopescan"
    r"|censysinspect|l9explore|l9tcpid|nimbostratus|internetmeasurement|expanse",
)
# Methods browsers, APIs and CORS send. Anything else (TRACE, TRACK, PROPFIND, DEBUG, made-up
# verbs) is a probe of the server, not a use of the site.
_USUAL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_STATIC = re.compile(r"\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm|mp3)$")


def path_only(path: str) -> str:
    """The path without its query or fragment, as requested (still URL-encoded)."""
    for sep in ("?", "#"):
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    return path


def is_sensitive_path(path: str | None) -> bool:
    """The request asks for a secret, a repository, a backup, server internals or an admin console."""
    if not path:
        return False
    return _SENSITIVE.search(decode_path(path_only(path))) is not None


def is_static_path(path: str | None) -> bool:
    """The request is for a static asset (style sheet, script, image, font, media)."""
    if not path:
        return False
    return _STATIC.search(path_only(path).lower()) is not None


def is_scanner_agent(user_agent: str | None) -> bool:
    """The User-Agent names a known web scanner or probing tool."""
    if not user_agent:
        return False
    return _SCANNER_AGENTS.search(user_agent.lower()) is not None


def is_unusual_method(method: str | None) -> bool:
    """The method is none a browser, an API client or a CORS preflight sends."""
    return bool(method) and method.upper() not in _USUAL_METHODS
