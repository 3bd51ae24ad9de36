"""JSON wire contracts (pydantic) of the public topics, shared by the worker and the CLI.

Outputs: `ThreatEvent` (threats.enriched, events.scored, threats.shadow), `HealingAction`
(actions.healing), `DeadLetter` (ops.deadletter). Operator side: `control.Envelope`
(ops.control, and model announcements and retrain requests on models.retrain) and
`StatusReply` (ops.status). `streamguard schemas` writes each one's JSON Schema
(`docs/schemas/`); the worker's internal messages are in `streams.internal`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.events import Event

from .control import Envelope, HealingPolicy

if TYPE_CHECKING:  # at run time only its fields are read; importing it loads scikit-learn
    from scoring.batch import ScoreResult

__all__ = [
    "AuditRecord",
    "DeadLetter",
    "EntityRef",
    "HealingAction",
    "Incident",
    "IncidentAction",
    "LiveSample",
    "ModelRef",
    "SAMPLE_SOURCE_MAX",
    "SampledRow",
    "StatusReply",
    "ThreatEvent",
    "WIRE_MODELS",
    "audit_record",
    "dead_letter",
    "event_id_for",
    "primary_entity",
    "threat_from",
]

# Original bytes kept in a dead letter: beyond this they are cut (size and sha256 still say
# what arrived), so a 5 MB message does not make a dead letter the broker refuses.
MAX_DEADLETTER_BYTES = 256 * 1024

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


class DeadLetter(BaseModel):
    """An input that could not be scored, on `ops.deadletter`, with everything needed to replay it."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(description="Reason code from a fixed set (features.errors.Reason; 'internal'; "
                                    "'unreadable_output' for a foreign record on an output topic the MongoDB sink "
                                    "reads; 'undelivered' for an action `streamguard webhook` could not deliver).")
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_b64: str = Field(description="The original bytes, base64, cut at 256 KiB.")
    original_size: int
    original_sha256: str
    truncated: bool
    received_at_ms: int


def dead_letter(reason: str, error: str, *, topic: str, partition: int, offset: int, raw: bytes,
                received_at_ms: int, keep: int = MAX_DEADLETTER_BYTES) -> DeadLetter:
    """The dead-letter record for a refused input, keeping up to `keep` bytes of the original."""
    raw = raw or b""
    keep = min(keep, MAX_DEADLETTER_BYTES)
    return DeadLetter(
        reason=reason,
        error=error[:2000],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        original_b64=base64.b64encode(raw[:keep]).decode("ascii"),
        original_size=len(raw),
        original_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=len(raw) > keep,
        received_at_ms=received_at_ms,
    )


class HealingAction(BaseModel):
    """An enforcement decision on `actions.healing`; `action_id` is deterministic, so consumers can de-duplicate."""

    model_config = ConfigDict(extra="forbid")
    action_id: str
    action: Literal["block_ip", "unblock_ip", "rate_limit", "lock_account", "isolate_host", "alert"]
    target: str
    target_type: str
    reason: str
    risk: int = Field(ge=0, le=100)
    ttl_s: int = Field(ge=0)
    expires_at_ms: int | None
    dry_run: bool
    degraded: bool = Field(False, description="A blocking action turned into an alert (circuit breaker or pause).")
    threat_event_ids: list[str]
    policy_version: str
    issued_at_ms: int
    sources: list[str] = Field(default_factory=list, description="A target-side action (e.g. rate_limit on a "
                               "DDoS victim): the attacking sources seen, up to 100.")


class AppliedAction(BaseModel):
    """What an enforcement point did with a healing action, on `actions.applied` (`streamguard enforce`, `webhook`)."""

    model_config = ConfigDict(extra="forbid")
    action_id: str
    action: str
    target: str
    outcome: Literal["applied", "printed", "delivered", "dry_run", "expired", "ignored", "failed"] = Field(
        description="applied: the commands ran; printed: --print mode wrote them; delivered: a webhook receiver "
                    "accepted it (streamguard webhook); dry_run, expired (a block whose expiry had passed) and "
                    "ignored (not an address action) ran nothing; failed: see detail.")
    detail: str
    commands: list[str] = Field(description="The enforcement commands run (or printed), as one line each.")
    enforcer: str = Field(description="host:pid of the enforcement point (webhook:host:pid for a webhook sender).")
    at_ms: int


class StatusReply(BaseModel):
    """A worker's answer to a control message on `ops.status` (the retrain worker's report of a run, too)."""

    model_config = ConfigDict(extra="forbid")
    worker: str = Field(description="Who answers: host:pid of a worker, retrain@host:pid of the retrain worker.")
    app_id: str
    at_ms: int
    nonce: str | None = Field(description="The nonce of the command answered; null for a message that was refused "
                              "before it could be read.")
    op: str | None
    outcome: Literal["applied", "rejected", "failed"]
    reason: str = Field(description="The op applied, or a short code saying why not (bad_signature, stale, ...).")
    detail: str
    state: dict[str, Any] = Field(description="What the worker serves after the command: model, challenger, "
                                  "threshold, dry run, paused, allowlist.")


class IncidentAction(BaseModel):
    """An action taken on an incident's target, as listed on the incident."""

    model_config = ConfigDict(extra="forbid")
    action_id: str
    action: str
    dry_run: bool
    degraded: bool
    issued_at_ms: int


class Incident(BaseModel):
    """One attack on `threats.incidents` (compacted, keyed by `incident_id`): the latest `revision` is the state.

    Threats of one (target type, target, label) while the attack goes on. Times ending in
    `_at_ms` are the healing worker's clock; `first_seen_ms`/`last_seen_ms` are event times.
    """

    model_config = ConfigDict(extra="forbid")
    incident_id: str = Field(description="Deterministic: a hash of the target, the label and the first threat.")
    target_type: str
    target: str
    label: str
    status: Literal["open", "closed"]
    opened_at_ms: int
    updated_at_ms: int
    closed_at_ms: int | None = Field(description="Set once no threat came for the quiet period "
                                     "(STREAMGUARD_INCIDENT_QUIET_S).")
    first_seen_ms: int
    last_seen_ms: int
    threat_count: int = Field(ge=1)
    max_risk: int = Field(ge=0, le=100)
    severity: Severity
    evidence: dict[str, float] = Field(description="The window features of the incident's highest-risk threat.")
    event_ids: list[str] = Field(description="Event ids of its first threats (on threats.enriched).")
    last_event_id: str
    actions: list[IncidentAction] = Field(description="The latest actions taken on its target.")
    model_versions: list[str]
    sources: list[str] = Field(default_factory=list, description="An attack grouped by its target (a DDoS): the "
                               "first attacking sources, up to 100.")
    revision: int = Field(ge=1, description="Grows with every change; keep the record with the highest.")


class AuditRecord(BaseModel):
    """One operator-visible change or refusal on `ops.audit` (compacted, keyed by `audit_id`; nothing expires).

    Written by each worker for every control command and model announcement it read (applied,
    rejected or failed), and by the retrain worker for each run. `issuer` is what the signed
    envelope says; it is only as trustworthy as `issuer_verified` (the signature checked).
    """

    model_config = ConfigDict(extra="forbid")
    audit_id: str = Field(description="Deterministic: the same worker answering the same message gives the same id.")
    at_ms: int
    worker: str = Field(description="Who acted: host:pid of a worker, retrain@host:pid of the retrain worker.")
    app_id: str
    issuer: str = Field(description="The envelope's issuer (e.g. cli@host), or empty when it could not be read.")
    issuer_verified: bool
    nonce: str | None
    op: str | None
    outcome: Literal["applied", "rejected", "failed"]
    reason: str
    detail: str
    model_version: str | None = Field(description="The version the worker serves after it.")


def audit_record(reply: StatusReply, *, issuer: str, verified: bool, origin: str = "", op: str | None = None,
                 nonce: str | None = None) -> AuditRecord:
    """The audit record of a status reply; `origin` names the message answered (topic/partition/offset), and `op`
    and `nonce` what an unverified message claimed (the reply does not repeat them)."""
    model = reply.state.get("model") if isinstance(reply.state, dict) else None
    version = model.get("version") if isinstance(model, dict) else None
    key = "\0".join((reply.worker, origin, reply.nonce or "", reply.op or "", str(reply.at_ms)))
    return AuditRecord(audit_id=hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32],
                       at_ms=reply.at_ms, worker=reply.worker, app_id=reply.app_id, issuer=issuer,
                       issuer_verified=verified, nonce=reply.nonce or nonce, op=reply.op or op,
                       outcome=reply.outcome, reason=reply.reason, detail=reply.detail,
                       model_version=version if isinstance(version, str) else None)


# A sampled row's entity is attacker-chosen text (a user name, a host): cut to this, never refused.
SAMPLE_SOURCE_MAX = 256


class SampledRow(BaseModel):
    """One scored event's feature row, as a worker sampled it for retraining."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(max_length=200)
    ts_ms: int
    source: str = Field(max_length=SAMPLE_SOURCE_MAX,
                        description="The event's primary entity (its source address, mostly), cut to 256 characters.")
    label: str = Field(max_length=64, description="The verdict served on it.")
    risk: int = Field(ge=0, le=100)
    flagged: bool = Field(description="The risk reached the threat threshold and the label is an attack.")
    x: list[float] = Field(max_length=4096, description="Features in the schema's FEATURE_NAMES order.")


class LiveSample(BaseModel):
    """Rows one scoring batch sampled, on `features.sample`: every flagged row, one unflagged row in N."""

    model_config = ConfigDict(extra="forbid")
    worker: str
    model_version: str
    feature_schema_version: str
    rows: list[SampledRow] = Field(max_length=100_000)


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "healing_policy": HealingPolicy,
    "threat_event": ThreatEvent,
    "healing_action": HealingAction,
    "dead_letter": DeadLetter,
    "control_envelope": Envelope,
    "status_reply": StatusReply,
    "applied_action": AppliedAction,
    "incident": Incident,
    "audit_record": AuditRecord,
    "live_sample": LiveSample,
}
