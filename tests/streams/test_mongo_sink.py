"""The MongoDB sink: document shape, junk refused, idempotent batches, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.mongo import ACTIONS, THREATS, MongoSink, action_document, threat_document

T_MS = 1_767_603_601_000


def _threat(i: int) -> dict:
    return {
        "event_id": f"{i:032x}", "entity": {"type": "ip", "value": f"203.0.113.{i}"},
        "ml_anomaly_score": 0.97, "ml_predicted_label": "brute_force", "ml_confidence": 0.9, "ml_risk_score": 88,
        "ml_reasoning": ["Many failed logins."], "severity": "high", "features": {"src_failed_logins_1m": 42.0},
        "model": {"name": "streamguard", "version": "v1", "feature_schema_version": "1"},
        "event": {"kind": "auth"}, "event_time_ms": T_MS - 1000, "detected_at_ms": T_MS + i,
    }


def _action(i: int) -> dict:
    return {"action_id": f"a{i}", "action": "block_ip", "target": f"203.0.113.{i}", "target_type": "ip",
            "reason": "brute_force", "risk": 90, "ttl_s": 600, "expires_at_ms": T_MS + 600_000, "dry_run": False,
            "threat_event_ids": [f"{i:032x}"], "policy_version": "1", "issued_at_ms": T_MS}


def test_documents_carry_the_record_its_id_and_datetimes() -> None:
    d = threat_document(orjson.dumps(_threat(1)))
    assert d["_id"] == _threat(1)["event_id"] and d["ml_risk_score"] == 88
    assert d["detected_at"] == datetime.fromtimestamp((T_MS + 1) / 1000, tz=UTC)
    a = action_document(orjson.dumps(_action(1)))
    assert a["_id"] == "a1" and a["issued_at"].tzinfo is UTC


@pytest.mark.parametrize("junk", [b"", b"{", b"\xff\xfe\x00", b"[]", b'{"event_id": 1}', b"null",
                                  orjson.dumps({**_threat(1), "ml_risk_score": 1e309}),
                                  b'{"event_id": "x", "ml_risk_score": NaN}'])
def test_anything_else_is_a_value_error(junk: bytes) -> None:
    with pytest.raises(ValueError):
        threat_document(junk)
    with pytest.raises(ValueError):
        action_document(junk)


@pytest.mark.integration
def test_batches_are_idempotent_and_expire(mongo_db) -> None:
    sink = MongoSink(mongo_db, ttl_days=1)
    docs = [threat_document(orjson.dumps(_threat(i))) for i in range(50)]
    assert sink.write(THREATS, docs + docs[:10]) == 50  # a repeated id in a batch counts once
    assert sink.write(THREATS, docs) == 50  # a redelivered batch replaces itself
    assert mongo_db[THREATS].count_documents({}) == 50
    sink.write(ACTIONS, [action_document(orjson.dumps(_action(i))) for i in range(5)])
    assert mongo_db[THREATS].count_documents({"entity.value": "203.0.113.7"}) == 1
    assert {"entity_time", "label_time", "severity_time"} <= set(mongo_db[THREATS].index_information())
    # Two days later everything is past the 1-day TTL (native TTL, or purged where unsupported).
    later = datetime.fromtimestamp(T_MS / 1000, tz=UTC) + timedelta(days=2)
    gone = sink.purge(later)
    if all(m.value == "purge" for m in sink.ttl_modes.values()):
        assert gone == 55
        assert mongo_db[THREATS].count_documents({}) == 0
