"""The operators' switches as one signed, versioned record, so they only ever move forward.

Threshold, pause, dry run, allowlist, the healing policy and the challenger are changed by signed commands on
`ops.control`. Every worker, after each control message it reads (applied or refused),
writes the resulting `OperatorState` to `<prefix><app_id>-operator-state` (compacted, one
partition, key `state`): the switches, the control-topic position read up to, and the
nonces of commands still inside the signature window. A starting worker loads the record
with the furthest position before its agents start, then reads the control topic from
there on, every command checked against the timestamp window. So:

- a command refused live (stale, replayed) is never applied later, at a restart: the
  position has passed it;
- a restarted consumer does not read the history again (it resumes from its position);
- switches outlive the control topic's retention, and a new worker starts with them.

Records younger than a day are never compacted away (`min.compaction.lag.ms`), so the
furthest one is there to find even when two workers' writes crossed. The record is signed
with the control secret for this purpose and this deployment (app id): one from another
deployment, or written by anyone without the secret, is ignored.
"""

from __future__ import annotations

import hmac
import logging
import uuid

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .control import HealingPolicy, mac
from .kafka import client_conf
from .settings import Settings

__all__ = ["STATE_KEY", "TOPIC_CONFIG", "OperatorState", "PromotionWatch", "load_operator_state", "sign_state",
           "state_topic", "topic_ends", "verify_state"]

log = logging.getLogger("streamguard.worker")

STATE_KEY = b"state"
_PURPOSE = "operator-state"
TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(24 * 3600 * 1000)}


def state_topic(settings: Settings) -> str:
    """The state topic of a deployment: `<prefix><app_id>-operator-state`."""
    return f"{settings.topic(settings.app_id)}-operator-state"


class PromotionWatch(BaseModel):
    """A promoted version on watch against the version it replaced (`scoring.guard`)."""

    model_config = ConfigDict(extra="forbid")
    version: str
    against: str


class OperatorState(BaseModel):
    """What operators set at run time, and how far into the control topic that reflects."""

    model_config = ConfigDict(extra="forbid")
    app_id: str
    position: dict[str, int] = Field(default_factory=dict, description="Control-topic partition (as a string) -> "
                                     "the next offset to read.")
    threat_threshold: int = Field(ge=0, le=100)
    paused: bool
    dry_run: bool
    allowlist: list[str]
    challenger: str | None = None
    ab_fraction: float = Field(0.0, ge=0.0, le=1.0)
    policy: HealingPolicy | None = Field(None, description="The healing policy loaded by `control policy`, if any.")
    nonces: dict[str, int] = Field(default_factory=dict, description="Nonces seen inside the signature window -> "
                                   "their issue time (ms).")
    # A worker restarted mid-watch resumes the watch (from its start) instead of serving the
    # promoted version unwatched: the registry says which version is active, not that it is on trial.
    watch: PromotionWatch | None = Field(None, description="The promotion being watched when written, if any.")
    written_at_ms: int
    writer: str
    signature: str = ""

    def ahead_of(self, other: OperatorState | None) -> bool:
        """Whether this record has read further into the control topic than `other` (in total)."""
        return other is None or sum(self.position.values()) > sum(other.position.values())


def _mac(secret: str, app_id: str, state: OperatorState) -> str:
    # A record without a watch is signed without the key, as records were before it existed:
    # an upgrade keeps the switches it finds.
    body = state.model_dump(mode="json", exclude={"signature"} if state.watch else {"signature", "watch"})
    return mac(secret, {"purpose": _PURPOSE, "app_id": app_id, "state": body})


def sign_state(state: OperatorState, secret: str) -> bytes:
    """The record's bytes, signed for this purpose and deployment."""
    state.signature = _mac(secret, state.app_id, state)
    return state.model_dump_json().encode()


def verify_state(raw: bytes | None, secret: str, app_id: str) -> OperatorState | None:
    """The record if it is a valid state of this deployment signed with `secret`; None otherwise."""
    try:
        state = OperatorState.model_validate(orjson.loads(raw or b""))
    except (orjson.JSONDecodeError, ValidationError):
        return None
    if state.app_id != app_id or not secret:
        return None
    if not hmac.compare_digest(_mac(secret, app_id, state).encode(), state.signature.encode()):
        return None
    return state


def topic_ends(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Partition -> end offset of a topic now (where a reader that starts now begins)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_conf(bootstrap), "group.id": f"ends-{uuid.uuid4().hex}", "log_level": 0})
    try:
        md = consumer.list_topics(topic, timeout=timeout_s)
        parts = md.topics[topic].partitions if topic in md.topics else {}
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in parts}
    finally:
        consumer.close()


def load_operator_state(bootstrap: str, topic: str, secret: str, app_id: str,
                        timeout_s: float = 30.0) -> tuple[OperatorState | None, int]:
    """The furthest valid record on the state topic (None if there is none) and how many records were refused."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**client_conf(bootstrap), "group.id": f"operator-state-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 0})
    best: OperatorState | None = None
    refused = 0
    try:
        md = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            return None, 0
        tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        ends = {}
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if high > low:
                ends[tp.partition] = high
                tp.offset = low
        consumer.assign([tp for tp in tps if tp.partition in ends])
        while ends:
            msg = consumer.poll(timeout_s)
            if msg is None:
                raise KafkaException(f"no record of {topic} within {timeout_s:g} s")
            if msg.error() is not None:
                continue
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
            if msg.key() != STATE_KEY or not msg.value():
                continue
            state = verify_state(msg.value(), secret, app_id)
            if state is None:
                refused += 1
            elif best is None or not best.ahead_of(state):
                # As far or further: of records as far into the control topic, the last written
                # wins (one that ends a promotion watch comes after the one that began it).
                best = state
    finally:
        consumer.close()
    if refused:
        log.warning("%d record(s) on %s are not valid operator states of %s signed with this secret; ignored",
                    refused, topic, app_id)
    return best, refused
