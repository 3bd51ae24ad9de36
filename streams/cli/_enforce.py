"""`streamguard enforce`: apply block_ip / unblock_ip actions to an nftables set on this host."""

from __future__ import annotations

import re
import socket
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
def enforce(
    nft: str = typer.Option("nft", "--nft", metavar="COMMAND",
                            help="How to run nft, e.g. 'sudo nft' or 'ip netns exec NS nft'."),
    table: str = typer.Option("streamguard", "--table", help="nftables table (family inet) holding the sets."),
    print_only: bool = typer.Option(False, "--print", help="Write the nft commands to stdout instead of running "
                                    "them (and acknowledge them as 'printed')."),
    group: str = typer.Option(None, "--group", metavar="ID",
                              help="Consumer group (default APP_ID-enforce-HOSTNAME: each host applies every action)."),
    max_actions: int = typer.Option(None, "--max", metavar="N", help="Stop after N actions."),
) -> None:
    """Enforce healing actions on this host: block_ip/unblock_ip become elements of an nftables set.

    Reads actions.healing and, per action: block_ip adds the address to the
    table's blocked_v4/blocked_v6 set with the action's remaining lifetime as the
    element timeout (the kernel lets it expire), unblock_ip removes it, and the
    input chain drops traffic from the set. Dry-run actions, actions whose expiry
    has passed and other action kinds run nothing. Every action gets one record
    on actions.applied (outcome, the commands, this host). An action id seen
    before (redelivered after a restart) is not applied twice; adding an element
    that exists is harmless anyway. Needs CAP_NET_ADMIN (root) unless --print.
    Stops on Ctrl-C/SIGTERM, after committing what it applied.
    """
    from ..enforce import NftBackend, plan, ruleset

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", table):
        raise fail(f"--table must be a plain nftables name (letters, digits, _), got {table!r}", 2)
    if max_actions is not None and max_actions < 1:
        raise fail(f"--max must be >= 1, got {max_actions}", 2)
    s = get_settings()
    names = topic_names(s)
    try:
        backend = NftBackend(nft)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    connect(s, [names.actions, names.applied, names.deadletter])
    if print_only:
        print(f"{backend.line(['-f', '-'])} <<'EOF'\n{ruleset(table)}EOF", flush=True)
    else:
        try:
            backend.load(ruleset(table))
        except RuntimeError as exc:
            raise fail(f"could not set up nftables table {table!r}: {exc}") from None
    say(f"enforcing {names.actions} into nftables table inet {table}"
        + (" (printing commands only)" if print_only else f" with {escape(nft)}"))

    def handle(action: Any, now_ms: int) -> Outcome:
        p = plan(action, now_ms, table=table)
        outcome, detail = p.outcome, p.detail
        for args in p.commands:
            if print_only:
                print(backend.line(args), flush=True)
                outcome = "printed"
                continue
            try:
                backend.run(args)
            except RuntimeError as exc:
                if action.action == "unblock_ip" and "No such file" in str(exc):
                    detail = f"{action.target} was not blocked here: nothing to remove"
                else:
                    outcome, detail = "failed", str(exc)
        return outcome, detail, [backend.line(a) for a in p.commands]

    try:
        done = run_actions(s, names, group=group or f"{s.app_id}-enforce-{socket.gethostname()}", enforcer="",
                           max_actions=max_actions, handle=handle)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    say(f"stopped after {done} action(s)")
    raise typer.Exit(0)
