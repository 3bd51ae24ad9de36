"""Which entities an event belongs to, and the per-event predicates every window store counts by."""

from __future__ import annotations

from .events import AuthOutcome, Event, EventKind

__all__ = ["ROLES", "decode_path", "entity_keys", "is_failure", "suspicious_url"]

ROLES = ("src", "dst", "user", "service")

_SQLI = ("union", "select", " or ", "'or", "1=1", "--", "sleep(", "benchmark(", "information_schema", "drop ", "' or")
_XSS = ("<script", "javascript:", "onerror=", "onload=", "<img", "<svg", "alert(", "document.cookie")
_TRAVERSAL = ("../", "..\\", "/etc/passwd", "win.ini", "/proc/self", "..;/")


def entity_keys(event: Event) -> dict[str, str]:
    """The entities an event belongs to, by role, as table keys like `src:203.0.113.7`."""
    keys: dict[str, str] = {}
    src = event.src_ip or event.src_host
    if src:
        keys["src"] = f"src:{src}"
    if event.kind is EventKind.FLOW and event.dst_ip:
        keys["dst"] = f"dst:{event.dst_ip}"
    if event.user and event.auth_outcome is not AuthOutcome.SESSION:
        keys["user"] = f"user:{event.user}"
    if event.service and event.kind in (EventKind.APP, EventKind.HTTP):
        keys["service"] = f"service:{event.service}"
    return keys


def is_failure(event: Event) -> bool:
    """An authentication failure, from a log line or a web/app 401/403."""
    if event.auth_outcome in (AuthOutcome.FAILURE, AuthOutcome.INVALID_USER):
        return True
    return event.status in (401, 403) and event.kind in (EventKind.HTTP, EventKind.APP)


def decode_path(path: str) -> str:
    """The path URL-decoded up to three times and lower-cased, as the token checks read it."""
    # Attackers double-encode; decode up to three rounds so %252e%252e%252f is seen as ../
    from urllib.parse import unquote_plus

    out = path
    for _ in range(3):
        nxt = unquote_plus(out)
        if nxt == out:
            break
        out = nxt
    return out.lower()


def suspicious_url(path: str | None) -> tuple[int, int, int]:
    """Counts of SQL-injection, XSS and path-traversal tokens in a (decoded) request path."""
    if not path:
        return 0, 0, 0
    p = decode_path(path)
    return (
        sum(p.count(t) for t in _SQLI),
        sum(p.count(t) for t in _XSS),
        sum(p.count(t) for t in _TRAVERSAL),
    )
