"""`streamguard enforce`: apply block_ip / unblock_ip actions to an nftables set on this host."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from typing import Any

import typer
from rich.markup import escape

from ..kafka import client_conf
from ..settings import get_settings
from ..topics import topic_names
from ._app import app
from ._common import connect, fail, kafka_detail, say

__all__: list[str] = []

_SEEN_MAX = 100_000  # action ids remembered against redelivery, most recent kept


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
    from confluent_kafka import Consumer, Producer

    from ..enforce import NftBackend, plan, ruleset
    from ..wire import AppliedAction, HealingAction, dead_letter

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
    host = f"{socket.gethostname()}:{os.getpid()}"
    consumer = Consumer({**client_conf(s.kafka_bootstrap),
        "group.id": group or f"{s.app_id}-enforce-{socket.gethostname()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 0,
    })
    producer = Producer({**client_conf(s.kafka_bootstrap), "enable.idempotence": True, "log_level": 0})
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    seen: dict[str, None] = {}
    done = 0
    say(f"enforcing {names.actions} into nftables table inet {table}"
        + (" (printing commands only)" if print_only else f" with {escape(nft)}"))
    try:
        consumer.subscribe([names.actions])
        while not stop["now"] and (max_actions is None or done < max_actions):
            msgs = consumer.consume(100, timeout=0.5)
            for msg in msgs:
                if msg.error():
                    say(f"[yellow]consumer[/] {escape(kafka_detail(str(msg.error())))}")
                    continue
                try:
                    action = HealingAction.model_validate_json(msg.value() or b"")
                except ValueError as exc:
                    # Not an action: nothing to enforce, but kept with its reason, like any refused input.
                    why = str(exc).splitlines()[0]
                    letter = dead_letter("wrong_type", f"not a healing action: {why}", topic=msg.topic(),
                                         partition=msg.partition(), offset=msg.offset(), raw=msg.value() or b"",
                                         received_at_ms=int(time.time() * 1000))
                    producer.produce(names.deadletter, key=msg.topic().encode(),
                                     value=letter.model_dump_json().encode())
                    say(f"[yellow]dead-lettered[/] an unreadable record at {msg.topic()}[{msg.partition()}]@"
                        f"{msg.offset()}: {escape(why)}")
                    continue
                if action.action_id in seen:
                    continue
                now_ms = int(time.time() * 1000)
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
                record = AppliedAction(action_id=action.action_id, action=action.action, target=action.target,
                                       outcome=outcome, detail=detail, commands=[backend.line(a) for a in p.commands],
                                       enforcer=host, at_ms=int(time.time() * 1000))
                producer.produce(names.applied, key=action.target.encode(), value=record.model_dump_json().encode())
                say(f"{outcome:8} {action.action} {escape(action.target[:64])}: {escape(detail)}")
                seen[action.action_id] = None
                if len(seen) > _SEEN_MAX:
                    del seen[next(iter(seen))]
                done += 1
            if msgs:
                # Acknowledgements are on the broker before the inputs are committed: at least once.
                if producer.flush(30) != 0:
                    raise fail("acknowledgements to the applied-actions topic were not delivered in 30 s")
                consumer.commit(asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(30)
        consumer.close()
    say(f"stopped after {done} action(s)")
    raise typer.Exit(0)
