"""The normalised event's wire form (`Event.to_dict` / `event_from_dict`)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime

import orjson

from features.events import AuthOutcome, Event, EventKind, event_from_dict

TS = datetime(2026, 1, 5, 9, 0, 1, 250_000, tzinfo=UTC)


def _reference(ev: Event) -> dict:
    """What `to_dict` must give, written the slow, obvious way."""
    out = {}
    for key, value in dataclasses.asdict(ev).items():
        if value is None or (key == "extra" and not value):
            continue
        out[key] = ev.ts_ms if key == "ts" else value.value if isinstance(value, enum.Enum) else value
    return out


def test_every_field_set_round_trips_and_matches_the_reference() -> None:
    values = {"kind": EventKind.AUTH, "ts": TS, "source": "sshd", "auth_outcome": AuthOutcome.INVALID_USER,
              "extra": {"a": 1.5}}
    for f in dataclasses.fields(Event):
        if f.name not in values:
            values[f.name] = {"str | None": "x", "int | None": 7, "float | None": 0.5}[f.type]
    ev = Event(**values)
    data = ev.to_dict()
    assert data == _reference(ev)
    assert data["ts"] == 1767603601250 and data["kind"] == "auth" and data["auth_outcome"] == "invalid_user"
    assert list(data) == [f.name for f in dataclasses.fields(Event)]  # field order kept
    assert event_from_dict(orjson.loads(orjson.dumps(data))) == ev
    data["extra"]["a"] = 2.0
    assert ev.extra == {"a": 1.5}  # the dict is a copy


def test_absent_fields_and_empty_extra_are_left_out() -> None:
    ev = Event(kind=EventKind.FLOW, ts=TS, source="flow_json", src_ip="198.51.100.4")
    assert ev.to_dict() == {"kind": "flow", "ts": 1767603601250, "source": "flow_json", "src_ip": "198.51.100.4"}
    assert ev.to_dict() == _reference(ev)
