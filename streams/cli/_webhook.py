"""`streamguard webhook`: forward healing actions to a remote enforcement point as JSON POSTs."""

from __future__ import annotations

import socket
import time
from typing import Any

import typer
from rich.markup import escape

from ..settings import get_settings
from ..topics import topic_names
from ._actions import Outcome, run_actions
from ._app import app
from ._common import connect, fail, say

__all__: list[str] = []


@app.command()
def webhook(
    url: str = typer.Option(None, "--url", help="Where to POST (default: STREAMGUARD_WEBHOOK_URL)."),
    attempts: int = typer.Option(5, "--attempts", min=1, max=20,
                                 help="Tries per action on a connection error, 408, 429 or 5xx (pauses 0.5 s, "
                                      "1 s, 2 s, ... up to 30 s)."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for each answer."),
    forward_dry_run: bool = typer.Option(False, "--forward-dry-run",
                                         help="Also forward dry-run actions (default: acknowledged as dry_run, "
                                              "not sent)."),
    group: str = typer.Option(None, "--group", metavar="ID",
                              help="Consumer group (default APP_ID-webhook-HOSTNAME)."),
    max_actions: int = typer.Option(None, "--max", metavar="N", help="Stop after N actions."),
) -> None:
    """Forward healing actions to an enforcement point that is not on this host, as JSON POSTs.

    Reads actions.healing and POSTs each action's record (the HealingAction JSON) to the URL,
    with an Idempotency-Key header (the action id) and, when STREAMGUARD_WEBHOOK_TOKEN is set,
    a bearer token and an X-Streamguard-Signature header (sha256=HMAC of the body with the
    token). A 2xx is delivered; connection errors, 408, 429 and 5xx are tried again; any
    other answer (a 4xx, a redirect: never followed) ends the action at once. Each action gets
    one record on actions.applied (delivered, dry_run or failed, with the last answer); one
    that could not be delivered is also dead-lettered on ops.deadletter (reason undelivered)
    with the action, to send again later. Dry-run actions are not sent unless
    --forward-dry-run. At least once: a receiver de-duplicates by the Idempotency-Key.
    """
    from ..webhook import WebhookSender
    from ..wire import dead_letter

    s = get_settings()
    target = url or s.webhook_url
    if not target:
        raise fail("no webhook URL: pass --url or set STREAMGUARD_WEBHOOK_URL", 2)
    if max_actions is not None and max_actions < 1:
        raise fail(f"--max must be >= 1, got {max_actions}", 2)
    token = s.webhook_token.get_secret_value() if s.webhook_token else None
    try:
        sender = WebhookSender(target, token=token, attempts=attempts, timeout_s=timeout)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    names = topic_names(s)
    connect(s, [names.actions, names.applied, names.deadletter])
    say(f"forwarding {names.actions} to {escape(target)}" + (" (signed)" if token else ""))

    def handle(action: Any, now_ms: int) -> Outcome:
        if action.dry_run and not forward_dry_run:
            return "dry_run", "a dry-run action: not sent (--forward-dry-run sends them)", []
        body = action.model_dump_json().encode()
        sent = sender.post(body, action.action_id)
        detail = f"{sent.detail} ({sent.attempts} attempt(s))" if sent.delivered else sent.detail
        return ("delivered" if sent.delivered else "failed"), detail, [f"POST {target}"]

    def undelivered(msg: Any, outcome: str, detail: str) -> Any:
        if outcome != "failed":
            return None
        return dead_letter("undelivered", f"webhook {target}: {detail}", topic=msg.topic(), partition=msg.partition(),
                           offset=msg.offset(), raw=msg.value() or b"", received_at_ms=int(time.time() * 1000))

    try:
        done = run_actions(s, names, group=group or f"{s.app_id}-webhook-{socket.gethostname()}",
                           enforcer="webhook:", max_actions=max_actions, handle=handle, dead_letter_for=undelivered,
                           batch=10)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    say(f"stopped after {done} action(s)")
    raise typer.Exit(0)
