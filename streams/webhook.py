"""Healing actions to a remote enforcement point as JSON POSTs: retried, signed, never redirected.

The body is the action's wire record (`HealingAction`) as it is on `actions.healing`. Headers:
`Idempotency-Key` (the action id: a receiver de-duplicates redeliveries), and with a token,
`Authorization: Bearer <token>` and `X-Streamguard-Signature: sha256=<hex HMAC of the body
with the token>`. A 2xx is delivered; a 408, 429, 5xx or a connection error is tried again
after a growing pause; any other status (a 4xx the receiver will answer again, a redirect) is
final at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Delivery", "WebhookSender", "check_url", "signature"]

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_PAUSE_S = 30.0


def check_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a host; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the webhook URL must be an absolute http:// or https:// URL, got {url!r}")
    return url


def signature(token: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer, not a new place to send actions to


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one POST ended: delivered or not, after how many attempts, and the last answer."""

    delivered: bool
    attempts: int
    detail: str


class WebhookSender:
    """POSTs one body at a time, with retries; the clock and the pause are injectable for tests."""

    def __init__(self, url: str, *, token: str | None = None, attempts: int = 5, timeout_s: float = 10.0,
                 first_pause_s: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = check_url(url)
        self.token = token
        self.attempts = max(1, attempts)
        self.timeout_s = timeout_s
        self.first_pause_s = first_pause_s
        self.sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def headers(self, body: bytes, key: str) -> dict[str, str]:
        out = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "streamguard-webhook"}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
            out["X-Streamguard-Signature"] = signature(self.token, body)
        return out

    def post(self, body: bytes, key: str) -> Delivery:
        """Send `body` until it is accepted, refused for good, or the attempts are spent."""
        pause = self.first_pause_s
        detail = ""
        for attempt in range(1, self.attempts + 1):
            req = urllib.request.Request(self.url, data=body, headers=self.headers(body, key), method="POST")
            try:
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    return Delivery(True, attempt, f"HTTP {resp.status}")
            except urllib.error.HTTPError as exc:
                detail = f"HTTP {exc.code}"
                if exc.code not in _RETRY_STATUS:
                    return Delivery(False, attempt, f"{detail}: refused, not retried")
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                detail = f"{type(reason).__name__}: {reason}"
            if attempt < self.attempts:
                self.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
        return Delivery(False, self.attempts, f"{detail} after {self.attempts} attempt(s)")
