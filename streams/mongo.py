"""MongoDB from the worker's side: connect, TTL indexes, and the sink of threats and actions.

The sink writes enriched threats and healing actions in batches, idempotently. Documents
keep the wire record's fields and add BSON datetimes (`detected_at`, `event_time`,
`issued_at`) for time queries and expiry. The `_id` is the record's own deterministic id
(`event_id`, `action_id`), so a batch written twice after a restart is stored once.
(`registry.mongo`, the model store, talks to MongoDB on its own: the registry imports
nothing of `streams`.)
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from pymongo import ASCENDING, DESCENDING, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from .errors import InfraUnavailable, StreamsError
from .wire import AuditRecord, HealingAction, Incident, ThreatEvent

__all__ = ["ACTIONS", "AUDIT", "INCIDENTS", "THREATS", "MongoSink", "SinkError", "TtlMode", "action_document",
           "audit_document", "connect_mongo", "ensure_ttl_index", "incident_document", "purge_expired",
           "threat_document"]

# Server answer "NotImplemented": FerretDB 1.x has no TTL indexes (FerretDB issue #2415).
_NOT_IMPLEMENTED = 238


class TtlMode(enum.Enum):
    """How expiry is enforced on a collection."""

    NATIVE = "native"  # the server's TTL monitor deletes expired documents
    PURGE = "purge"  # the server has no TTL indexes; `purge_expired` must be called


def connect_mongo(uri: str, timeout_ms: int = 5000, *, socket_timeout_ms: int | None = None) -> MongoClient:
    """A client that has answered a ping; raises `InfraUnavailable` otherwise.

    `socket_timeout_ms` bounds every operation: without it a server that never answers holds
    the caller for good (the sink's batch, and its partition, would stall instead of retrying).
    """
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True,
                                      socketTimeoutMS=socket_timeout_ms)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        raise InfraUnavailable("MongoDB", _redact(uri), str(exc)) from exc
    return client


def ensure_ttl_index(coll: Collection, field: str, expire_after_s: int) -> TtlMode:
    """Create a TTL index on `field`; fall back to an ordinary index plus purging where unsupported."""
    try:
        coll.create_index([(field, ASCENDING)], expireAfterSeconds=int(expire_after_s), name=f"ttl_{field}")
        return TtlMode.NATIVE
    except OperationFailure as exc:
        if exc.code != _NOT_IMPLEMENTED:
            raise
    # Still index the field, so the purge query is cheap.
    coll.create_index([(field, ASCENDING)], name=f"ttl_{field}")
    return TtlMode.PURGE


def purge_expired(coll: Collection, field: str, expire_after_s: int, now: datetime) -> int:
    """Delete documents whose `field` is older than the TTL; returns how many went."""
    cutoff = now - timedelta(seconds=expire_after_s)
    return coll.delete_many({field: {"$lt": cutoff}}).deleted_count


def _redact(uri: str) -> str:
    """The URI without credentials, for error messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


# --- the sink ------------------------------------------------------------------------------

THREATS = "threats"
ACTIONS = "actions"
INCIDENTS = "incidents"
AUDIT = "audit"  # never expires: not in TIME_FIELDS
_REPLACED = frozenset({INCIDENTS})  # documents that change; the others are written once
_DUPLICATE_KEY = 11000
# The time field each collection is queried, and expired, by.
TIME_FIELDS = {THREATS: "detected_at", ACTIONS: "issued_at", INCIDENTS: "updated_at"}


class SinkError(StreamsError):
    """A MongoDB write that failed (the batch is retried; nothing is committed before it succeeds)."""


def _dt(ms: int) -> datetime:
    """Milliseconds since the epoch as a UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _document(raw: bytes, model: type[BaseModel], what: str, id_field: str,
              times: dict[str, str]) -> dict[str, Any]:
    """A wire record as stored: its fields, `_id` from `id_field`, and BSON datetimes from ms fields."""
    try:
        rec = model.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"not a {what}: {exc.errors()[0]['msg']}") from None
    doc = rec.model_dump(mode="json")
    doc["_id"] = doc[id_field]
    doc.update({name: _dt(doc[ms]) for name, ms in times.items()})
    return doc


def threat_document(raw: bytes) -> dict[str, Any]:
    """The stored form of one `threats.enriched` record; raises ValueError if it is not one."""
    return _document(raw, ThreatEvent, "threat event", "event_id",
                     {"detected_at": "detected_at_ms", "event_time": "event_time_ms"})


def incident_document(raw: bytes) -> dict[str, Any]:
    """The stored form of one `threats.incidents` record (the latest revision replaces the one stored)."""
    doc = _document(raw, Incident, "incident", "incident_id",
                    {"opened_at": "opened_at_ms", "updated_at": "updated_at_ms", "last_seen": "last_seen_ms"})
    doc["closed_at"] = _dt(doc["closed_at_ms"]) if doc["closed_at_ms"] is not None else None
    return doc


def audit_document(raw: bytes) -> dict[str, Any]:
    """The stored form of one `ops.audit` record."""
    return _document(raw, AuditRecord, "audit record", "audit_id", {"at": "at_ms"})


def action_document(raw: bytes) -> dict[str, Any]:
    """The stored form of one `actions.healing` record; raises ValueError if it is not one."""
    return _document(raw, HealingAction, "healing action", "action_id", {"issued_at": "issued_at_ms"})


class MongoSink:
    """Batched, idempotent writes of threats and actions, with the indexes a SOC queries by."""

    def __init__(self, db: Database, *, ttl_days: float = 0.0) -> None:
        self.db = db
        self.ttl_s = int(ttl_days * 86400)
        self.ttl_modes: dict[str, TtlMode] = {}
        try:
            t, a, i = db[THREATS], db[ACTIONS], db[INCIDENTS]
            # By entity, by time, by label: the three questions an analyst starts with.
            t.create_index([("entity.value", ASCENDING), ("detected_at", DESCENDING)], name="entity_time")
            t.create_index([("ml_predicted_label", ASCENDING), ("detected_at", DESCENDING)], name="label_time")
            t.create_index([("severity", ASCENDING), ("detected_at", DESCENDING)], name="severity_time")
            a.create_index([("target", ASCENDING), ("issued_at", DESCENDING)], name="target_time")
            a.create_index([("action", ASCENDING), ("issued_at", DESCENDING)], name="action_time")
            i.create_index([("target", ASCENDING), ("updated_at", DESCENDING)], name="target_time")
            i.create_index([("label", ASCENDING), ("updated_at", DESCENDING)], name="label_time")
            i.create_index([("status", ASCENDING), ("updated_at", DESCENDING)], name="status_time")
            au = db[AUDIT]
            au.create_index([("at", DESCENDING)], name="at_desc")
            au.create_index([("op", ASCENDING), ("at", DESCENDING)], name="op_time")
            au.create_index([("issuer", ASCENDING), ("at", DESCENDING)], name="issuer_time")
            for coll, field in ((t, TIME_FIELDS[THREATS]), (a, TIME_FIELDS[ACTIONS]), (i, TIME_FIELDS[INCIDENTS])):
                if self.ttl_s:
                    self.ttl_modes[coll.name] = ensure_ttl_index(coll, field, self.ttl_s)
                else:
                    coll.create_index([(field, DESCENDING)], name=f"{field}_desc")
        except PyMongoError as exc:
            raise SinkError(f"cannot prepare MongoDB collections in {db.name!r}: {exc}") from exc

    def write(self, collection: str, docs: list[dict[str, Any]]) -> int:
        """Store documents by `_id`; returns how many are stored (the distinct ids of the batch).

        Threats, actions and audit records never change: a redelivered one is already there and
        its duplicate-key error is ignored (the first copy stays). Inserting is what makes this
        cheap: FerretDB's SQLite backend scans the collection for every upsert (300 upserts into
        4,000 documents took 63 s here, 300 inserts 0.09 s). Incidents change (revisions): they are
        replaced, the last copy of an id winning, since one incident's records come in order.
        """
        if not docs:
            return 0
        # The last copy of an id in the batch wins, as it would in sequence.
        by_id = {d["_id"]: d for d in docs}
        try:
            if collection in _REPLACED:
                ops = [ReplaceOne({"_id": k}, d, upsert=True) for k, d in by_id.items()]
                self.db[collection].bulk_write(ops, ordered=False)
                return len(ops)
            try:
                self.db[collection].insert_many(list(by_id.values()), ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != _DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                    raise
            return len(by_id)
        except PyMongoError as exc:
            raise SinkError(f"writing {len(by_id)} document(s) to {collection!r} failed: {exc}") from exc

    def purge(self, now: datetime) -> int:
        """Delete expired documents where the server has no TTL indexes (FerretDB 1.x)."""
        gone = 0
        for name, field in TIME_FIELDS.items():
            if self.ttl_modes.get(name) is TtlMode.PURGE:
                try:
                    gone += purge_expired(self.db[name], field, self.ttl_s, now)
                except PyMongoError as exc:
                    raise SinkError(f"purging {name!r} failed: {exc}") from exc
        return gone
