"""`streamguard webhook`: actions POSTed to a real local HTTP server, retried, signed, acknowledged, dead-lettered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.webhook import WebhookSender, check_url, signature
from streams.wire import AppliedAction, DeadLetter, HealingAction
from tests.conftest import ROOT
from tests.streams.conftest import BIN, drain, produce, unique_prefix

TOKEN = "webhook-token-0123456789"


class Receiver:
    """A local HTTP server answering POSTs from a script of statuses per path (then 200); it records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: dict[str, list[int]] = {}
        self.always: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                try:
                    target = json.loads(body).get("target", "")
                except ValueError:
                    target = ""
                key = target or self.path
                status = receiver.always.get(key) or (receiver.script.get(key) or [200]).pop(0)
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_urls_must_be_absolute_http() -> None:
    assert check_url("https://soc.example/hook") == "https://soc.example/hook"
    for bad in ("ftp://x/y", "localhost:8080/hook", "http:///nohost", "file:///etc/passwd"):
        with pytest.raises(ValueError, match="absolute http"):
            check_url(bad)


def test_retries_until_accepted_and_signs_the_body(receiver: Receiver) -> None:
    pauses: list[float] = []
    sender = WebhookSender(receiver.url, token=TOKEN, attempts=5, sleep=pauses.append)
    receiver.script["/hook"] = [503, 429]
    body = b'{"action_id": "a1"}'
    sent = sender.post(body, "a1")
    assert sent.delivered and sent.attempts == 3 and sent.detail == "HTTP 200"
    assert pauses == [0.5, 1.0]
    path, headers, got = receiver.requests[-1]
    assert got == body and headers["Idempotency-Key"] == "a1" and headers["Authorization"] == f"Bearer {TOKEN}"
    expected = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Streamguard-Signature"] == expected == signature(TOKEN, body)


def test_a_refusal_or_a_redirect_ends_at_once(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url, attempts=5, sleep=lambda _: None)
    receiver.always["/hook"] = 400
    sent = sender.post(b"{}", "k")
    assert not sent.delivered and sent.attempts == 1 and "HTTP 400" in sent.detail
    receiver.always["/hook"] = 302
    sent = sender.post(b"{}", "k")
    assert not sent.delivered and sent.attempts == 1 and "HTTP 302" in sent.detail
    assert all(path == "/hook" for path, _, _ in receiver.requests)  # the redirect was never followed
    assert "Authorization" not in receiver.requests[0][1]  # no token, no credentials sent


def test_an_unreachable_receiver_spends_the_attempts() -> None:
    sender = WebhookSender("http://127.0.0.1:1/hook", attempts=3, timeout_s=2, sleep=lambda _: None)
    sent = sender.post(b"{}", "k")
    assert not sent.delivered and sent.attempts == 3 and "after 3 attempt(s)" in sent.detail


def _action(n: int, **kw: object) -> HealingAction:
    now = int(time.time() * 1000)
    return HealingAction(**{
        "action_id": f"act-{n}", "action": "block_ip", "target": f"198.51.100.{n}", "target_type": "ip",
        "reason": "brute_force at risk 96", "risk": 96, "ttl_s": 600, "expires_at_ms": now + 600_000,
        "dry_run": False, "threat_event_ids": [f"ev-{n}"], "policy_version": "1", "issued_at_ms": now, **kw})


@pytest.mark.integration
def test_actions_are_delivered_acknowledged_and_the_undeliverable_dead_lettered(kafka_bootstrap: str,
                                                                               receiver: Receiver) -> None:
    prefix = unique_prefix()
    live, dry, doomed = _action(1), _action(2, dry_run=True), _action(3)
    receiver.script[live.target] = [503]  # delivered on the second try
    receiver.always[doomed.target] = 500
    produce(kafka_bootstrap, f"{prefix}actions.healing",
            [(a.target.encode(), a.model_dump_json().encode()) for a in (live, dry, doomed)]
            + [(b"x", b"not an action")])
    env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMGUARD_TOPIC_PREFIX": prefix,
           "STREAMGUARD_WEBHOOK_TOKEN": TOKEN}
    done = subprocess.run([str(BIN), "webhook", "--url", receiver.url, "--attempts", "2", "--max", "3"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    bodies = [HealingAction.model_validate_json(body) for _, _, body in receiver.requests]
    assert [b.action_id for b in bodies] == ["act-1", "act-1", "act-3", "act-3"]  # the dry run was not sent
    assert bodies[1] == live
    for _, headers, body in receiver.requests:
        assert headers["X-Streamguard-Signature"] == signature(TOKEN, body)
    applied = {a.action_id: a for a in (AppliedAction.model_validate_json(r.value())
                                        for r in drain(kafka_bootstrap, f"{prefix}actions.applied"))}
    assert {k: a.outcome for k, a in applied.items()} == {"act-1": "delivered", "act-2": "dry_run",
                                                          "act-3": "failed"}
    assert applied["act-3"].detail == "HTTP 500 after 2 attempt(s)" and applied["act-1"].enforcer.startswith("webhook:")
    letters = [DeadLetter.model_validate_json(r.value()) for r in drain(kafka_bootstrap, f"{prefix}ops.deadletter")]
    by_reason = {d.reason: d for d in letters}
    assert sorted(by_reason) == ["undelivered", "wrong_type"]
    assert HealingAction.model_validate_json(base64.b64decode(by_reason["undelivered"].original_b64)) == doomed
