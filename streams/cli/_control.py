"""`streamguard control ...`: sign operator commands, send them to every worker, show their replies."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape

from scoring.healing import BUILTIN_TEXT

from ..control import Command, ControlRejected, sign
from ..kafka import client_conf
from ..policy import PolicyFileError, read_policy_file
from ..settings import get_settings
from ..topics import topic_names
from ._app import app
from ._common import Sender, check_loadable, connect, fail, registry, say

__all__ = ["send_signed"]

control_app = typer.Typer(
    help="Steer running workers with signed commands (STREAMGUARD_SIGNING_SECRET must match the workers').",
    no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(control_app, name="control")

_WAIT = typer.Option(5.0, "--wait", "-w", help="Seconds to collect the workers' replies (0: do not wait).")
_EXPECT = typer.Option(0, "--expect", "-n", min=0, help="Stop waiting once this many workers replied (0: wait "
                                                         "the whole --wait).")


def send_signed(command: Command, wait_s: float, *, announce: bool = False, expect: int | None = None,
                unanswered: str | None = None) -> int:
    """Sign, send, then print each worker's reply for this command; the exit code to use.

    Commands go to the control topic, announcements of new model versions to models.retrain.
    `unanswered`: what to say when nobody replies to a command that needs no reader now (exit 0).
    """
    s = get_settings()
    names = topic_names(s)
    topic = names.retrain if announce else names.control
    try:
        env = sign(command, s.signing_secret.get_secret_value(), app_id=s.app_id,
                   purpose="models" if announce else "control", now_ms=int(datetime.now(UTC).timestamp() * 1000),
                   issuer=f"cli@{socket.gethostname()}")
    except ControlRejected as exc:
        raise fail(exc.detail) from None
    connect(s, [topic, names.status])
    replies = _ReplyReader(s.kafka_bootstrap, names.status) if wait_s > 0 else None
    sender = Sender(s.kafka_bootstrap)
    # One key: every command lands on one partition, so workers apply them in the order sent.
    sender.send(topic, env.model_dump_json().encode(), b"announce" if announce else b"control")
    sender.flush()
    if not sender.delivered:
        raise fail(f"the command was not delivered: {sender.first_error}")
    say(f"sent {command.op} (nonce {env.nonce[:12]}…)")
    if replies is None:
        return 0
    got = replies.collect(env.nonce, wait_s, expect)
    if not got and unanswered:
        say(f"[yellow]no reply within {wait_s:g} s[/]: {unanswered}")
        return 0
    if not got:
        say(f"[yellow]no worker replied within {wait_s:g} s[/] (are workers running with this prefix?)")
        return 1
    bad = 0
    for r in got:
        colour = {"applied": "green"}.get(r["outcome"], "red")
        bad += r["outcome"] != "applied"
        st = r.get("state") or {}
        shown = [f"model {(st.get('model') or {}).get('version')}"] + [
            f"{label} {st[k]}" for k, label in (("threat_threshold", "threshold"), ("dry_run", "dry_run"),
                                                ("paused", "paused"), ("policy_version", "policy")) if k in st]
        if st.get("challenger"):
            ch = st["challenger"]
            shown.append(f"challenger {ch['version']}" + (f" A/B {ch['ab_fraction']:.0%}" if ch["ab_fraction"] else ""))
        say(f"[{colour}]{r['outcome']}[/] {escape(r['worker'])}: {escape(r['detail'])}  [dim]({', '.join(shown)})[/]")
    return 1 if bad else 0


def _send(command: Command, wait_s: float, expect: int | None = None) -> None:
    raise typer.Exit(send_signed(command, wait_s, expect=expect))


class _ReplyReader:
    """Reads the status topic from its current end, so only replies to what we send are seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        self.c = Consumer({**client_conf(bootstrap), "group.id": f"control-cli-{uuid.uuid4().hex}",
                           "enable.auto.commit": False, "log_level": 0})
        md = self.c.list_topics(topic, timeout=10)
        self.c.assign([TopicPartition(topic, p, OFFSET_END) for p in md.topics[topic].partitions])

    def collect(self, nonce: str, wait_s: float, expect: int | None = None) -> list[dict[str, Any]]:
        """Replies to `nonce` for wait_s seconds, or until `expect` of them came."""
        out, deadline = [], time.monotonic() + wait_s
        try:
            while time.monotonic() < deadline and (expect is None or len(out) < expect):
                for m in self.c.consume(100, 0.2):
                    if m.error() is None:
                        r = orjson.loads(m.value())
                        if r.get("nonce") == nonce:
                            out.append(r)
        finally:
            self.c.close()
        return out


@control_app.command("promote")
def promote(version: str = typer.Argument(..., help="A registered version (see `streamguard models list`)."),
            wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Make VERSION the active model in the registry and swap it in on every worker.

    Each worker verifies the artifact's sha256, its feature schema version and the
    conformance checks before it serves the version; a refused version leaves the current
    one serving and is reported.
    """

    s = get_settings()
    reg = registry()
    # Refuses an unsigned record or a missing or altered artifact before anything changes.
    check_loadable(reg, version)
    reg.activate(s.model_name, version)
    _send(Command(op="promote", version=version), wait, expect or None)


@control_app.command("rollback")
def rollback(to: str = typer.Option(None, "--to", help="Version to return to (default: the previous one)."),
             wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Return the registry to the previous (or a named) version and swap it in on every worker."""

    s = get_settings()
    reg = registry()
    target = to or next((i.version for i in reg.list(s.model_name) if i.status == "previous"), None)
    if target is not None:  # none: the registry says why below
        check_loadable(reg, target)
    info = reg.rollback(s.model_name, to)
    _send(Command(op="rollback", version=info.version), wait, expect or None)


@control_app.command("challenger")
def challenger(version: str = typer.Argument(None, help="A registered version to run beside the active one."),
               ab: float = typer.Option(0.0, "--ab", min=0.0, max=1.0,
                                        help="Share of entities (0-1) the challenger serves for real; 0: shadow only."),
               stop: bool = typer.Option(False, "--stop", help="Stop the running challenger."),
               wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Run VERSION beside the active model on every worker, or stop it with --stop.

    The challenger scores the same batches; how it compares (label and decision agreement,
    risk distribution, label mix) is on /metrics (`streamguard_challenger_*`, `streamguard_model_*`)
    and /health, and its verdicts go to the shadow topic when STREAMGUARD_EMIT_SHADOW is on.
    With --ab, the entities whose stable hash falls below the fraction get the challenger's
    verdicts and actions. `streamguard control promote VERSION` makes it the active model and
    ends the challenge.
    """
    if stop == (version is not None):
        raise fail("give a VERSION to start a challenger, or --stop (not both)")
    if version is not None:
        # Refuses an unknown version, an unsigned record or an altered artifact before anything is sent.
        check_loadable(registry(), version)
    _send(Command(op="challenger", version=version, fraction=ab if version is not None else None), wait,
          expect or None)


@control_app.command("set-threshold")
def set_threshold(value: int = typer.Argument(..., min=0, max=100,
                                              help="Risk (0-100) from which an event is a threat."),
                  wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Change the risk threshold for threat events on every worker."""
    _send(Command(op="set_threshold", value=value), wait, expect or None)


@control_app.command("pause")
def pause(wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Pause enforcement: from now on only alerts are emitted (blocks already issued stay)."""
    _send(Command(op="pause_actions"), wait, expect or None)


@control_app.command("resume")
def resume(wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Resume enforcement after `pause`."""
    _send(Command(op="resume_actions"), wait, expect or None)


@control_app.command("dry-run")
def dry_run(state: str = typer.Argument(..., metavar="on|off", help="on: actions are emitted with dry_run true."),
            wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Switch dry-run mode on or off on every worker."""
    if state not in ("on", "off"):
        raise fail("dry-run takes 'on' or 'off'")
    _send(Command(op="dry_run", on=state == "on"), wait, expect or None)


@control_app.command("allowlist")
def allowlist(action: str = typer.Argument(..., metavar="add|remove"),
              cidr: str = typer.Argument(..., help="An IPv4/IPv6 network, e.g. 10.0.0.0/8 or 203.0.113.7/32."),
              wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Add a CIDR to (or remove it from) the allowlist: allowlisted addresses are never acted on."""
    if action not in ("add", "remove"):
        raise fail("allowlist takes 'add' or 'remove'")
    try:
        command = Command(op="allowlist", action=action, cidr=cidr)
    except ValueError as exc:
        detail = exc.errors()[0]["msg"] if hasattr(exc, "errors") else exc
        raise fail(f"not a valid CIDR: {cidr!r} ({detail})") from None
    _send(command, wait, expect or None)


@control_app.command("unblock")
def unblock(target: str = typer.Argument(..., help="The blocked IP address."), wait: float = _WAIT,
            expect: int = _EXPECT) -> None:
    """Lift every active block on TARGET now (an `unblock_ip` action is emitted)."""
    try:
        command = Command(op="unblock", target=target)
    except ValueError:
        raise fail(f"not an IP address: {target!r}") from None
    _send(command, wait, expect or None)


@control_app.command("policy")
def policy(file: Path = typer.Argument(None, exists=False, dir_okay=False,
                                       help="A healing policy file (TOML); --show-builtin prints one to start from."),
           check: bool = typer.Option(False, "--check", help="Only check FILE (shape, actions, targets, risks, "
                                                             "ladders) and print its rules; send nothing."),
           show_builtin: bool = typer.Option(False, "--show-builtin", help="Print the built-in policy file and exit."),
           wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Load a healing policy (rules per label: action, target, risk, evidence) into every worker.

    Workers check it again and refuse it whole if any rule is unsound; the policy in force
    stays then. A loaded policy outlives restarts (it is part of the operator state) until
    another is loaded. Every action names the policy version that issued it.
    """
    if show_builtin:
        typer.echo(BUILTIN_TEXT, nl=False)
        return
    if file is None:
        raise fail("give a policy FILE (or --show-builtin)")
    try:
        doc, rules = read_policy_file(file)
    except PolicyFileError as exc:
        raise fail(str(exc)) from None
    if check:
        say(f"{file}: {rules.summary()}, ladder {list(rules.ttl_ladder_s)} s")
        for label, found in rules.rules.items():
            for r in found:
                bounds = [f"{k} >= {v:g}" for k, v in r.min_evidence.items()]
                bounds += [f"{k} <= {v:g}" for k, v in r.max_evidence.items()]
                say(f"  {escape(label):20} {r.action:12} on {r.target:11} risk >= {r.min_risk:<3} "
                    f"{escape(', '.join(bounds))}")
        return
    _send(Command(op="policy", policy=doc), wait, expect or None)


@control_app.command("status")
def status(wait: float = _WAIT, expect: int = _EXPECT) -> None:
    """Ask every worker for its model, threshold and switches."""
    _send(Command(op="status"), wait, expect or None)


@control_app.command("retrain")
def retrain(reason: str = typer.Option("operator request", "--reason", help="Why (kept with the new version)."),
            wait: float = typer.Option(600.0, "--wait", "-w", help="Seconds to wait for the retrain worker's answer "
                                                                  "(a run trains a model: minutes).")) -> None:
    """Ask the retrain worker (`streamguard retrain-worker`) to train, gate and publish a new version."""
    _send(Command(op="retrain", reason=reason), wait, expect=1)  # only the retrain worker answers



