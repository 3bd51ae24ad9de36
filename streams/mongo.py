"""MongoDB access shared by the sink and the registry store: connect, TTL indexes."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from .errors import InfraUnavailable

__all__ = ["TtlMode", "connect_mongo", "ensure_ttl_index", "purge_expired"]

# Server answer "NotImplemented": FerretDB 1.x has no TTL indexes (FerretDB issue #2415).
_NOT_IMPLEMENTED = 238


class TtlMode(enum.Enum):
    """How expiry is enforced on a collection."""

    NATIVE = "native"  # the server's TTL monitor deletes expired documents
    PURGE = "purge"  # the server has no TTL indexes; `purge_expired` must be called


def connect_mongo(uri: str, timeout_ms: int = 5000) -> MongoClient:
    """A client that has answered a ping; raises `InfraUnavailable` otherwise."""
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True)
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
