"""The committed JSON Schemas of the wire records (`docs/schemas/`) match the models, and samples validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.cli._schemas import schemas, write_schemas
from streams.control import Command, sign
from streams.policy import builtin_document
from streams.wire import (
    WIRE_MODELS,
    AppliedAction,
    DeadLetter,
    EntityRef,
    HealingAction,
    Incident,
    IncidentAction,
    LiveSample,
    ModelRef,
    SampledRow,
    StatusReply,
    ThreatEvent,
    audit_record,
    dead_letter,
)

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "schemas"
_REGENERATE = "run `streamguard schemas` to regenerate docs/schemas/ after changing a wire model"


def test_committed_schemas_are_what_the_command_writes_now(tmp_path: Path) -> None:
    schemas(out=tmp_path)
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.schema.json")}
    assert sorted(fresh) == sorted(f"{name}.schema.json" for name in WIRE_MODELS)
    committed = {p.name: p.read_bytes() for p in COMMITTED.glob("*.schema.json")}
    assert sorted(committed) == sorted(fresh), _REGENERATE
    for name, data in fresh.items():
        assert committed[name] == data, f"{name} is stale: {_REGENERATE}"


def test_schema_files_are_stable_and_identified(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path / "a")
    again = write_schemas(tmp_path / "b")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    for path, (name, model) in zip(paths, WIRE_MODELS.items()):
        text = path.read_text()
        assert path.name == f"{name}.schema.json"
        assert text.endswith("}\n") and not text.endswith("\n\n")
        doc = json.loads(text)
        assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
        assert doc["$id"] == f"https://streamguard.local/schemas/{name}.schema.json"
        assert doc["title"] == model.__name__
        assert set(doc["properties"]) == set(model.model_fields)


def test_command_prints_the_paths_written(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    out = tmp_path / "schemas"
    result = CliRunner().invoke(app, ["schemas", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / f"{name}.schema.json") for name in WIRE_MODELS]


def _samples() -> dict[str, Any]:
    threat = ThreatEvent(
        event_id="0123456789abcdef0123456789abcdef",
        entity=EntityRef(type="ip", value="203.0.113.7"),
        ml_anomaly_score=0.97,
        ml_predicted_label="brute_force",
        ml_confidence=0.9,
        ml_risk_score=88,
        ml_reasoning=["40 failed logins in 1 min"],
        severity="high",
        features={"src_failures_1m": 40.0},
        model=ModelRef(name="streamguard", version="20260101-000000-abcdef12", feature_schema_version="1"),
        event={"kind": "auth", "ts": 1767603601000, "src_ip": "203.0.113.7", "user": "root"},
        event_time_ms=1767603601000,
        detected_at_ms=1767603602000,
    )
    action = HealingAction(
        action_id="a1", action="block_ip", target="203.0.113.7", target_type="ip", reason="brute_force risk 88",
        risk=88, ttl_s=900, expires_at_ms=1767604502000, dry_run=True, threat_event_ids=[threat.event_id],
        policy_version="1", issued_at_ms=1767603602000,
    )
    letter = dead_letter("bad_json", "bad_json: invalid JSON", topic="flows", partition=2, offset=41,
                         raw=b'{"ts": 1', received_at_ms=1767603602000)
    assert isinstance(letter, DeadLetter)
    envelope = sign(Command(op="set_threshold", value=80), "s3cret", app_id="streamguard", now_ms=1767603602000, issuer="cli@ops",
                    nonce="0123456789abcdef")
    reply = StatusReply(worker="host:42", app_id="streamguard", at_ms=1767603602100, nonce=envelope.nonce,
                        op="set_threshold", outcome="applied", reason="set_threshold", detail="threat threshold 80",
                        state={"model": {"name": "streamguard", "version": "v1"}, "threat_threshold": 80})
    applied = AppliedAction(action_id="a1", action="block_ip", target="203.0.113.7", outcome="applied",
                            detail="203.0.113.7 blocked for 900 s", enforcer="fw-1:77", at_ms=1767603602300,
                            commands=["nft add element inet streamguard blocked_v4 '{ 203.0.113.7 timeout 900s }'"])
    incident = Incident(
        incident_id="9f" * 16, target_type="ip", target="203.0.113.7", label="brute_force", status="open",
        opened_at_ms=1767603602000, updated_at_ms=1767603632000, closed_at_ms=None, first_seen_ms=1767603601000,
        last_seen_ms=1767603631000, threat_count=31, max_risk=88, severity="high",
        evidence={"src_failed_logins_10m": 31.0}, event_ids=[threat.event_id], last_event_id=threat.event_id,
        actions=[IncidentAction(action_id="a1", action="block_ip", dry_run=True, degraded=False,
                                issued_at_ms=1767603602000)],
        model_versions=["20260101-000000-abcdef12"], revision=32)
    audit = audit_record(reply, issuer="cli@ops", verified=True)
    sample = LiveSample(worker="host:42", model_version="20260101-000000-abcdef12", feature_schema_version="3",
                        rows=[SampledRow(event_id=threat.event_id, ts_ms=1767603601000, source="203.0.113.7",
                                         label="brute_force", risk=88, flagged=True, x=[40.0, 0.0, 1.5])])
    return {"threat_event": threat, "healing_action": action, "dead_letter": letter, "control_envelope": envelope,
            "status_reply": reply, "applied_action": applied, "incident": incident, "audit_record": audit,
            "healing_policy": builtin_document(), "live_sample": sample}


def test_sample_records_validate_against_their_schema() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (not a project dependency); schema validation not run")
    docs = {name: json.loads(text) for name, text in
            ((p.name.removesuffix(".schema.json"), p.read_text()) for p in COMMITTED.glob("*.schema.json"))}
    samples = _samples()
    assert sorted(samples) == sorted(WIRE_MODELS)
    for name, record in samples.items():
        schema = docs[name]
        validator = jsonschema.Draft202012Validator(schema)
        validator.check_schema(schema)
        instance = json.loads(record.model_dump_json())
        validator.validate(instance)
        # The schema is strict enough to refuse what the model refuses.
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({**instance, "unexpected": 1})
        missing = dict(instance)
        missing.pop(next(iter(schema["required"])))
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(missing)
    threat = json.loads(samples["threat_event"].model_dump_json())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(docs["threat_event"]).validate({**threat, "ml_risk_score": 101})
