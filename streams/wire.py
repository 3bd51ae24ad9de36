"""JSON wire contracts (pydantic), shared by the worker and the offline CLI."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.events import Event
from scoring.batch import ScoreResult

__all__ = ["EntityRef", "ModelRef", "ThreatEvent", "threat_from", "primary_entity", "event_id_for"]

Severity = Literal["low", "medium", "high", "critical"]


class EntityRef(BaseModel):
    """The entity a verdict is about."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["ip", "host", "user", "service", "unknown"]
    value: str


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: str
    version: str
    feature_schema_version: str


class ThreatEvent(BaseModel):
    """One scored event on `threats.enriched` (times are integer ms since the epoch, UTC)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    event_id: str = Field(description="Deterministic: the same input position always gives the same id.")
    entity: EntityRef
    ml_anomaly_score: float = Field(ge=0, le=1)
    ml_predicted_label: str
    ml_confidence: float = Field(ge=0, le=1)
    ml_risk_score: int = Field(ge=0, le=100)
    ml_reasoning: list[str]
    severity: Severity
    features: dict[str, float] = Field(description="The model's features for this event, by name.")
    model: ModelRef
    event: dict[str, Any] = Field(description="The normalised source event.")
    event_time_ms: int
    detected_at_ms: int


def primary_entity(event: Event) -> EntityRef:
    """Who the verdict is about: the source if known, else the user, destination or service."""
    if event.src_ip:
        return EntityRef(type="ip", value=event.src_ip)
    if event.src_host:
        return EntityRef(type="host", value=event.src_host)
    if event.user:
        return EntityRef(type="user", value=event.user)
    if event.dst_ip:
        return EntityRef(type="ip", value=event.dst_ip)
    if event.service:
        return EntityRef(type="service", value=event.service)
    return EntityRef(type="unknown", value=event.host or "unknown")


def event_id_for(origin: str) -> str:
    """Deterministic event id from where the input came from (topic/partition/offset, file/line)."""
    return hashlib.sha256(origin.encode()).hexdigest()[:32]


def threat_from(event: Event, result: ScoreResult, *, event_id: str, detected_at_ms: int,
                feature_schema_version: str) -> ThreatEvent:
    """The wire record for a scored event."""
    src = event.to_dict()
    src.pop("label", None)  # ground truth never leaves as if it were a verdict
    return ThreatEvent(
        event_id=event_id,
        entity=primary_entity(event),
        ml_anomaly_score=result.anomaly_score,
        ml_predicted_label=result.label,
        ml_confidence=result.confidence,
        ml_risk_score=result.risk,
        ml_reasoning=list(result.reasoning),
        severity=result.severity,  # type: ignore[arg-type]
        features=result.features,
        model=ModelRef(name=result.model_name, version=result.model_version,
                       feature_schema_version=feature_schema_version),
        event=src,
        event_time_ms=event.ts_ms,
        detected_at_ms=detected_at_ms,
    )
