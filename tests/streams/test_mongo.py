"""The MongoDB-protocol plumbing: documents, queries, indexes and TTL through pymongo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ASCENDING, DESCENDING

from streams.errors import InfraUnavailable
from streams.mongo import TtlMode, connect_mongo, ensure_ttl_index, purge_expired

pytestmark = pytest.mark.integration


def test_write_query_and_index(mongo_db) -> None:
    coll = mongo_db["threats"]
    now = datetime.now(UTC).replace(microsecond=0)
    docs = [
        {"event_id": f"e{i}", "entity": {"type": "ip", "value": f"203.0.113.{i % 5}"},
         "ml_risk_score": i % 100, "detected_at": now - timedelta(seconds=i)}
        for i in range(500)
    ]
    assert len(coll.insert_many(docs).inserted_ids) == 500
    coll.create_index([("entity.value", ASCENDING), ("detected_at", DESCENDING)], name="by_entity_time")
    assert "by_entity_time" in {ix["name"] for ix in coll.list_indexes()}

    hits = list(coll.find({"entity.value": "203.0.113.3", "ml_risk_score": {"$gte": 50}}).sort("detected_at", -1))
    assert len(hits) == sum(1 for d in docs if d["entity"]["value"] == "203.0.113.3" and d["ml_risk_score"] >= 50)
    assert [h["detected_at"] for h in hits] == sorted((h["detected_at"] for h in hits), reverse=True)
    assert hits[0]["detected_at"].tzinfo is not None
    assert coll.count_documents({}) == 500


def test_ttl_index_expires_documents(mongo_db) -> None:
    coll = mongo_db["actions"]
    now = datetime.now(UTC)
    coll.insert_many([{"n": i, "created_at": now - timedelta(hours=i)} for i in range(10)])
    mode = ensure_ttl_index(coll, "created_at", expire_after_s=3600 * 5 + 60)
    indexes = {ix["name"]: ix for ix in coll.list_indexes()}
    assert "ttl_created_at" in indexes
    if mode is TtlMode.NATIVE:
        assert indexes["ttl_created_at"]["expireAfterSeconds"] == 3600 * 5 + 60
    # Either way the expired documents must be removable through the same call the sink makes
    # (a no-op on a server whose TTL monitor already removed them).
    purge_expired(coll, "created_at", 3600 * 5 + 60, now)
    assert sorted(d["n"] for d in coll.find({}, {"n": 1})) == [0, 1, 2, 3, 4, 5]


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(InfraUnavailable, match=r"MongoDB at mongodb://\*\*\*@127.0.0.1:1/"):
        connect_mongo("mongodb://user:pw@127.0.0.1:1/", timeout_ms=300)
