"""A read-only JSON API on the worker's web server: the investigation queries over the MongoDB sink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .investigate import Query, active_blocks, find_actions, find_incidents, find_threats, parse_when
from .settings import Settings

__all__ = ["MAX_LIMIT", "register_api"]

MAX_LIMIT = 500
_STORED_ONLY = frozenset({"_id", "detected_at", "event_time", "issued_at", "opened_at", "updated_at", "last_seen",
                          "closed_at"})
_FILTERS = {"incidents": ("target", "label", "severity", "status", "since", "until"),
            "threats": ("entity", "label", "severity", "since", "until"),
            "actions": ("target", "action", "since", "until"),
            "blocks": ("target",)}


def query_from(kind: str, params: Any, now: datetime) -> Query:
    """The query a request's parameters ask for; ValueError (a 400) for anything unknown or malformed."""
    allowed = {*_FILTERS[kind], "limit", "offset"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; {kind} takes {sorted(allowed)}")
    limit = int(params.get("limit", 50))
    offset = int(params.get("offset", 0))
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_LIMIT} and offset >= 0")
    if params.get("status") not in (None, "open", "closed"):
        raise ValueError("status must be open or closed")
    since, until = params.get("since"), params.get("until")
    # Offset pagination: the query fetches offset + limit rows, the page is the tail.
    return Query(entity=params.get("entity") or params.get("target"), label=params.get("label"),
                 severity=params.get("severity"), action=params.get("action"), status=params.get("status"),
                 since=parse_when(since, now) if since else None, until=parse_when(until, now) if until else None,
                 limit=offset + limit)


def _page(kind: str, db: Any, params: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    q = query_from(kind, params, now)
    offset = int(params.get("offset", 0))
    if kind == "incidents":
        rows = find_incidents(db, q)
    elif kind == "threats":
        rows = find_threats(db, q)
    elif kind == "actions":
        rows = find_actions(db, q)
    else:
        rows = active_blocks(db, now, q)
    # The BSON datetimes the sink adds for queries; every record keeps its times in ms.
    items = [{k: v for k, v in d.items() if k not in _STORED_ONLY} for d in rows[offset:]]
    limit = q.limit - offset
    nxt = None
    if len(rows) == q.limit:  # maybe more: the next page starts after this one
        nxt = f"/api/{kind}?" + urlencode({**{k: v for k, v in params.items() if k != "offset"},
                                            "offset": offset + limit})
    return {"items": items, "count": len(items), "offset": offset, "next": nxt}


def register_api(app: Any, settings: Settings) -> None:
    """Add /api/incidents, /api/threats, /api/actions and /api/blocks (GET, JSON) to a Faust app's web server."""
    state: dict[str, Any] = {}

    def db() -> Any:
        if "db" not in state:
            from .mongo import connect_mongo

            uri = settings.mongo_uri
            state["db"] = connect_mongo(uri.get_secret_value())[settings.mongo_database] if uri else None
        return state["db"]

    def handler(kind: str) -> Any:
        async def page(web: Any, request: Any) -> Any:
            if settings.mongo_uri is None:
                return web.json({"error": "no MongoDB configured (STREAMGUARD_MONGO_URI): nothing is stored to query"},
                                status=501)
            params = dict(request.query)
            try:
                # pymongo blocks: the query runs in a thread, not on the worker's event loop.
                body = await asyncio.to_thread(lambda: _page(kind, db(), params))
            except ValueError as exc:
                return web.json({"error": str(exc)}, status=400)
            except Exception as exc:  # noqa: BLE001 - the stored data's server failing must not touch the stream
                state.pop("db", None)
                return web.json({"error": f"MongoDB query failed: {type(exc).__name__}"}, status=503)
            return web.json(body)
        return page

    for kind in _FILTERS:
        app.page(f"/api/{kind}")(handler(kind))
