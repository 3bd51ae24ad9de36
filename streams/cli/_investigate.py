"""`streamguard incidents`, `threats`, `actions`, `blocks` and `audit`: what the MongoDB sink stored (the audit
trail also from its topic), filtered, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import InfraUnavailable
from ..settings import get_settings
from ._app import app
from ._common import fail

__all__: list[str] = []

_SINCE = typer.Option(None, "--since", metavar="WHEN", help="From this time on: 30m, 2h, 7d (ago) or ISO 8601.")
_UNTIL = typer.Option(None, "--until", metavar="WHEN", help="Before this time (same forms as --since).")
_LIMIT = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="At most this many rows, newest first.")
_JSON = typer.Option(False, "--json", help="One JSON object per line on stdout instead of the table.")


def _db() -> Any:
    """The sink's database; one clear error if no MongoDB is configured or it does not answer."""
    from ..mongo import connect_mongo

    s = get_settings()
    if s.mongo_uri is None:
        raise fail("this reads what the MongoDB sink stored: set STREAMGUARD_MONGO_URI (and run the workers with it) "
                   "first; without MongoDB, `streamguard tail` shows threats and actions live from Kafka", 2)
    try:
        return connect_mongo(s.mongo_uri.get_secret_value())[s.mongo_database]
    except InfraUnavailable as exc:
        raise fail(f"MongoDB at {exc.address} did not answer ({exc.detail[:200]})") from None


def _query(entity: str | None, since: str | None, until: str | None, limit: int, **kw: Any) -> Any:
    from ..investigate import Query, parse_when

    now = datetime.now(UTC)
    try:
        return Query(entity=entity, since=parse_when(since, now) if since else None,
                     until=parse_when(until, now) if until else None, limit=limit, **kw)
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def _ms(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _show(rows: list[dict[str, Any]], as_json: bool, title: str, columns: list[tuple[str, Any]]) -> None:
    if as_json:
        for doc in rows:
            print(json.dumps({k: v for k, v in doc.items() if k != "_id"}, default=str), flush=True)
        return
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    for name, _ in columns:
        table.add_column(name, overflow="fold")
    for doc in rows:
        table.add_row(*(escape(str(get(doc))) for _, get in columns))
    Console().print(table)  # the result goes to stdout; messages and errors to stderr


@app.command()
def incidents(
    entity: str = typer.Option(None, "--target", "-t", help="Only incidents on this target (IP address, user...)."),
    label: str = typer.Option(None, "--label", "-l", help="Only this attack label, e.g. brute_force."),
    severity: str = typer.Option(None, "--severity", "-s", help="Only this severity: low, medium, high, critical."),
    status: str = typer.Option(None, "--status", help="Only open or only closed incidents."),
    since: str = _SINCE, until: str = _UNTIL, limit: int = _LIMIT, as_json: bool = _JSON,
) -> None:
    """Incidents the MongoDB sink stored (one per attack: target, label, threats, span, actions), latest first.

    --since/--until filter on the time of the incident's last update. Needs STREAMGUARD_MONGO_URI.
    """
    from ..investigate import find_incidents

    if status not in (None, "open", "closed"):
        raise fail(f"--status must be open or closed, got {status!r}", 2)
    rows = find_incidents(_db(), _query(entity, since, until, limit, label=label, severity=severity, status=status))
    _show(rows, as_json, "incidents", [
        ("updated (UTC)", lambda d: _ms(d["updated_at_ms"])), ("status", lambda d: d["status"]),
        ("severity", lambda d: d["severity"]), ("label", lambda d: d["label"]),
        ("target", lambda d: f"{d['target_type']}:{d['target']}"), ("threats", lambda d: d["threat_count"]),
        ("max risk", lambda d: d["max_risk"]),
        ("seen (UTC)", lambda d: f"{_ms(d['first_seen_ms'])} .. {_ms(d['last_seen_ms'])[11:]}"),
        ("actions", lambda d: ", ".join(sorted({a["action"] for a in d["actions"]}))),
        ("id", lambda d: d["incident_id"]),
    ])


@app.command()
def threats(
    entity: str = typer.Option(None, "--entity", "-e", help="Only this entity (an IP address, user, host...)."),
    label: str = typer.Option(None, "--label", "-l", help="Only this predicted label, e.g. brute_force."),
    severity: str = typer.Option(None, "--severity", "-s", help="Only this severity: low, medium, high, critical."),
    since: str = _SINCE, until: str = _UNTIL, limit: int = _LIMIT, as_json: bool = _JSON,
) -> None:
    """Threats the MongoDB sink stored, newest first (needs STREAMGUARD_MONGO_URI)."""
    from ..investigate import find_threats

    rows = find_threats(_db(), _query(entity, since, until, limit, label=label, severity=severity))
    _show(rows, as_json, "threats", [
        ("detected (UTC)", lambda d: _ms(d["detected_at_ms"])), ("severity", lambda d: d["severity"]),
        ("risk", lambda d: d["ml_risk_score"]), ("label", lambda d: d["ml_predicted_label"]),
        ("entity", lambda d: f"{d['entity']['type']}:{d['entity']['value']}"),
        ("why", lambda d: (d["ml_reasoning"][1:2] or d["ml_reasoning"][:1] or [""])[0][:120]),
    ])


@app.command()
def actions(
    target: str = typer.Option(None, "--target", "-t", help="Only actions on this target."),
    action: str = typer.Option(None, "--action", "-a", help="Only this action: block_ip, unblock_ip, alert, ..."),
    since: str = _SINCE, until: str = _UNTIL, limit: int = _LIMIT, as_json: bool = _JSON,
) -> None:
    """Healing actions the MongoDB sink stored, newest first (needs STREAMGUARD_MONGO_URI)."""
    from ..investigate import find_actions

    rows = find_actions(_db(), _query(target, since, until, limit, action=action))
    _show(rows, as_json, "actions", [
        ("issued (UTC)", lambda d: _ms(d["issued_at_ms"])), ("action", lambda d: d["action"]),
        ("target", lambda d: d["target"]), ("expires (UTC)", lambda d: _ms(d.get("expires_at_ms"))),
        ("dry run", lambda d: "yes" if d["dry_run"] else ""), ("reason", lambda d: d["reason"][:120]),
    ])


@app.command()
def blocks(
    target: str = typer.Option(None, "--target", "-t", help="Only this address."),
    limit: int = _LIMIT, as_json: bool = _JSON,
) -> None:
    """Addresses blocked now: each one's latest block_ip, not undone, not a dry run, not expired."""
    from ..investigate import active_blocks

    rows = active_blocks(_db(), datetime.now(UTC), _query(target, None, None, limit))
    _show(rows, as_json, "active blocks", [
        ("target", lambda d: d["target"]), ("since (UTC)", lambda d: _ms(d["issued_at_ms"])),
        ("expires (UTC)", lambda d: _ms(d.get("expires_at_ms"))), ("risk", lambda d: d["risk"]),
        ("reason", lambda d: d["reason"][:120]),
    ])


def _audit_from_kafka(q: Any) -> list[dict[str, Any]]:
    """The audit trail read from its compacted topic, start to end (no MongoDB needed), filtered like the query."""
    from ..kafka import read_history
    from ..topics import topic_names
    from ..wire import AuditRecord
    from ._common import connect

    s = get_settings()
    topic = topic_names(s).audit
    connect(s, [topic])
    rows: list[dict[str, Any]] = []
    for msg in read_history(s, topic, group="streamguard-audit-reader"):
        try:
            rows.append(AuditRecord.model_validate_json(msg.value() or b"").model_dump(mode="json"))
        except ValueError:
            continue  # not ours: the sink dead-letters it; the listing shows audit records only
    since = q.since.timestamp() * 1000 if q.since else None
    until = q.until.timestamp() * 1000 if q.until else None
    rows = [r for r in rows if (not q.action or r["op"] == q.action) and (not q.entity or r["issuer"] == q.entity)
            and (not q.status or r["outcome"] == q.status) and (since is None or r["at_ms"] >= since)
            and (until is None or r["at_ms"] < until)]
    rows.sort(key=lambda r: r["at_ms"], reverse=True)
    return rows[: q.limit]


@app.command()
def audit(
    op: str = typer.Option(None, "--op", help="Only this command: promote, rollback, set_threshold, pause_actions, "
                                              "allowlist_add, announce, retrain, ..."),
    issuer: str = typer.Option(None, "--issuer", help="Only commands whose envelope names this issuer."),
    outcome: str = typer.Option(None, "--outcome", help="Only applied, rejected or failed."),
    since: str = _SINCE, until: str = _UNTIL, limit: int = _LIMIT, as_json: bool = _JSON,
) -> None:
    """The audit trail, newest first: every control command and model announcement each worker read (with its
    issuer and outcome), and each retrain run.

    Reads MongoDB when STREAMGUARD_MONGO_URI is set (the sink's `audit` collection), else the
    ops.audit topic itself from its start (compacted, nothing expires). A rejected message's
    issuer is only what it claims (`verified` says whether its signature checked).
    """
    if outcome not in (None, "applied", "rejected", "failed"):
        raise fail(f"--outcome must be applied, rejected or failed, got {outcome!r}", 2)
    q = _query(issuer, since, until, limit, action=op, status=outcome)
    if get_settings().mongo_uri is not None:
        from ..investigate import find_audit

        rows = find_audit(_db(), q)
    else:
        rows = _audit_from_kafka(q)
    _show(rows, as_json, "audit", [
        ("at (UTC)", lambda d: _ms(d["at_ms"])), ("op", lambda d: d["op"] or "-"),
        ("outcome", lambda d: d["outcome"]), ("reason", lambda d: d["reason"]),
        ("issuer", lambda d: (d["issuer"] or "-") + ("" if d["issuer_verified"] else " (unverified)")),
        ("worker", lambda d: d["worker"]), ("model", lambda d: d["model_version"] or "-"),
        ("detail", lambda d: d["detail"][:100]),
    ])
