"""What an analyst asks of the stored threats and actions, as MongoDB queries (the sink's collections and indexes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

__all__ = ["Query", "active_blocks", "audit_filter", "find_actions", "find_audit", "find_incidents", "find_threats",
           "parse_when"]

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, now: datetime) -> datetime:
    """A point in time from '30m', '2h', '7d' (that long ago) or an ISO 8601 instant (UTC if no zone)."""
    m = _AGO.fullmatch(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a duration like 30m, 2h, 7d or an ISO 8601 time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Query:
    """Filters shared by the investigation commands; None means any."""

    entity: str | None = None
    label: str | None = None
    severity: str | None = None
    action: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


def _time_range(field: str, q: Query) -> dict[str, Any]:
    rng = {k: v for k, v in (("$gte", q.since), ("$lt", q.until)) if v is not None}
    return {field: rng} if rng else {}


def _filter(q: Query, time_field: str, fields: dict[str, str]) -> dict[str, Any]:
    """The time range on `time_field`, and each set query attribute on its document field."""
    f: dict[str, Any] = _time_range(time_field, q)
    f.update({doc: value for attr, doc in fields.items() if (value := getattr(q, attr))})
    return f


def threat_filter(q: Query) -> dict[str, Any]:
    """The MongoDB filter on `threats` (each field one the sink indexes, with `detected_at`)."""
    return _filter(q, "detected_at", {"entity": "entity.value", "label": "ml_predicted_label",
                                      "severity": "severity"})


def action_filter(q: Query) -> dict[str, Any]:
    """The MongoDB filter on `actions` (target or action, with `issued_at`)."""
    return _filter(q, "issued_at", {"entity": "target", "action": "action"})


def incident_filter(q: Query) -> dict[str, Any]:
    """The MongoDB filter on `incidents` (target, label or status, with `updated_at`)."""
    return _filter(q, "updated_at", {"entity": "target", "label": "label", "severity": "severity",
                                     "status": "status"})


def audit_filter(q: Query) -> dict[str, Any]:
    """The MongoDB filter on `audit` (op, issuer or outcome, with `at`); `action` holds the op, `entity` the issuer."""
    return _filter(q, "at", {"action": "op", "entity": "issuer", "status": "outcome"})


def find_audit(db: Database, q: Query) -> list[dict[str, Any]]:
    """Audit records matching the query, newest first."""
    return list(db["audit"].find(audit_filter(q), sort=[("at", DESCENDING)], limit=q.limit))


def find_incidents(db: Database, q: Query) -> list[dict[str, Any]]:
    """Incidents matching the query, most recently updated first."""
    return list(db["incidents"].find(incident_filter(q), sort=[("updated_at", DESCENDING)], limit=q.limit))


def find_threats(db: Database, q: Query) -> list[dict[str, Any]]:
    """Threats matching the query, newest first."""
    return list(db["threats"].find(threat_filter(q), sort=[("detected_at", DESCENDING)], limit=q.limit))


def find_actions(db: Database, q: Query) -> list[dict[str, Any]]:
    """Healing actions matching the query, newest first."""
    return list(db["actions"].find(action_filter(q), sort=[("issued_at", DESCENDING)], limit=q.limit))


def active_blocks(db: Database, now: datetime, q: Query | None = None) -> list[dict[str, Any]]:
    """Addresses blocked now: each target's latest block_ip or unblock_ip is a block, not a dry run, not expired."""
    q = q or Query()
    f: dict[str, Any] = {"action": {"$in": ["block_ip", "unblock_ip"]}}
    if q.entity:
        f["target"] = q.entity
    latest: dict[str, dict[str, Any]] = {}
    # Newest first: the first record seen per target is its latest decision.
    for doc in db["actions"].find(f, sort=[("issued_at", DESCENDING)]):
        latest.setdefault(doc["target"], doc)
    now_ms = int(now.timestamp() * 1000)
    out = [d for d in latest.values() if d["action"] == "block_ip" and not d["dry_run"]
           and (d.get("expires_at_ms") is None or d["expires_at_ms"] > now_ms)]
    out.sort(key=lambda d: d["issued_at_ms"], reverse=True)
    return out[: q.limit]
