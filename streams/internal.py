"""Messages between a worker's stages: entity hops, healing requests, event-time floors.

Internal topics carry them (named after the app id):

- `<app>-entity-hops` and `<app>-to-score`: a JSON array of `EntityHop`s, one message per
  destination partition and batch (up to `MAX_HOPS_PER_MESSAGE` hops or 1 MiB), so Kafka and
  Faust cost per batch, not per event. A hop's delivery position is its message's offset and
  its index in the message (`position`).
- `<app>-healing` (one partition): one `ThreatNotice` (a threat the policy decides on) or one
  `UnblockRequest` (an operator's, relayed by the control consumer) per message.
- `<app>-watermarks` (one partition): one `FloorReport` per message.
- `<app>-operator-state` (compacted, one partition): the signed `OperatorState` record
  (`streams.operator_state`), listed here for its schema.

The models below are the types and the JSON Schemas (`streamguard schemas --internal`,
committed in `docs/schemas/internal/`). On the hot path hops stay plain dicts of that shape:
validating each one with pydantic would cost more than the rest of the hop stage does. The
tests hold the stages' output to the schema; the hop stage dead-letters a hop it cannot read.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from scoring.healing import Threat

from .operator_state import OperatorState

__all__ = [
    "INTERNAL_MODELS",
    "MAX_HOPS_PER_MESSAGE",
    "EntityHop",
    "FloorReport",
    "Hop",
    "Outbox",
    "ThreatNotice",
    "UnblockRequest",
    "decode",
    "delivered_by",
    "encode",
    "event_time",
    "floor_report",
    "hop_event",
    "partition_for",
    "position",
    "via_origin",
    "read_floor_report",
    "read_healing",
    "threat_notice",
    "unblock_request",
    "unpack",
]

_SLOT = 1 << 16
MAX_HOPS_PER_MESSAGE = 1000
_MAX_MESSAGE_BYTES = 1024 * 1024  # well under the producer's 4 MiB request limit


# --- types ---------------------------------------------------------------------------------


class EntityHop(BaseModel):
    """An event on its way through the entity states it belongs to, then to scoring."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(description="The event id (deterministic from the raw input position).")
    ts: int = Field(description="Event time, ms since the epoch (what the hold orders hops by).")
    k: list[int | float | None] = Field(min_length=13, max_length=15, description="What the event adds to "
                                        "each entity's windows, computed once at ingest "
                                        "(`features.store.kernel_inputs`, in `features.store.INPUTS` order; 15 "
                                        "since feature schema 3, 13 from a worker before it).")
    ev: str = Field(description="The normalised event (`features.events.Event.to_dict`) as JSON text: only the "
                    "scoring stage reads it.")
    ingest_ms: int = Field(alias="in", description="When ingest read the raw input (ms since the epoch).")
    src: tuple[str, int] = Field(description="The raw input: 'topic:partition' and offset.")
    route: list[tuple[str, str]] = Field(description="The entities to visit, in order: (role, key).")
    i: int = Field(ge=0, description="Index in `route` of the entity this hop is bound for; len(route): scoring.")
    parts: dict[str, list[float]] = Field(description="Window features read so far, by entity role, in "
                                          "`features.extract.ROLE_FEATURES` order.")
    via: tuple[str, int] | None = Field(None, description="Where the previous entity's hop was read: "
                                        "'hops:partition/lane' (the lane: that hop's own origin) and position "
                                        "(redelivery detection).")


class ThreatNotice(BaseModel):
    """A threat the healing policy decides on (`scoring.healing.Threat`)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    label: str
    risk: int = Field(ge=0, le=100)
    target_type: str
    target: str
    evidence: dict[str, float]
    detected_at_ms: int
    event_time_ms: int | None = None
    model_version: str | None = None
    subjects: dict[str, str] = Field(default_factory=dict, description="Other entities of the event a rule may act "
                                     "on: dst_ip (its destination address), user (the account it names).")


class UnblockRequest(BaseModel):
    """An operator's unblock, relayed to the worker that owns the policy state."""

    model_config = ConfigDict(extra="forbid")
    unblock: str = Field(description="The IP address to unblock.")


class FloorReport(BaseModel):
    """One worker's event-time floor, for the others' input alignment (`streams.ordering`)."""

    model_config = ConfigDict(extra="forbid")
    worker: str
    floor_ms: int | None = Field(description="Event time below which this worker has nothing left to read; "
                                 "null: no backlog.")


INTERNAL_MODELS: dict[str, type[BaseModel]] = {
    "entity_hop": EntityHop,
    "threat_notice": ThreatNotice,
    "unblock_request": UnblockRequest,
    "floor_report": FloorReport,
    "operator_state": OperatorState,
}

_HEALING: TypeAdapter[ThreatNotice | UnblockRequest] = TypeAdapter(ThreatNotice | UnblockRequest)


# --- healing requests and floor reports ------------------------------------------------------


def threat_notice(t: Threat) -> bytes:
    """The healing-topic message for a threat."""
    return orjson.dumps({"event_id": t.event_id, "label": t.label, "risk": t.risk, "target_type": t.target_type,
                         "target": t.target, "evidence": t.evidence,
                         "detected_at_ms": int(t.detected_at.timestamp() * 1000), "event_time_ms": t.event_time_ms,
                         "model_version": t.model_version, "subjects": dict(t.subjects)})


def unblock_request(target: str) -> bytes:
    """The healing-topic message for an operator's unblock."""
    return orjson.dumps({"unblock": target})


def read_healing(raw: bytes | None) -> Threat | UnblockRequest:
    """A healing-topic message as the policy's `Threat`, or an `UnblockRequest`; raises on anything else."""
    msg = _HEALING.validate_json(raw or b"")
    if isinstance(msg, UnblockRequest):
        return msg
    return Threat(event_id=msg.event_id, label=msg.label, risk=msg.risk, target_type=msg.target_type,
                  target=msg.target, evidence=dict(msg.evidence),
                  detected_at=datetime.fromtimestamp(msg.detected_at_ms / 1000, tz=UTC),
                  event_time_ms=msg.event_time_ms, model_version=msg.model_version, subjects=dict(msg.subjects))


def floor_report(worker: str, floor_ms: int | None) -> bytes:
    """The watermarks-topic message for a worker's floor."""
    return orjson.dumps({"worker": worker, "floor_ms": floor_ms})


def read_floor_report(raw: bytes | None) -> FloorReport:
    """A watermarks-topic message; raises on anything else."""
    return FloorReport.model_validate_json(raw or b"")


# --- entity hops ---------------------------------------------------------------------------


def encode(obj: Any) -> bytes:
    """JSON bytes sized to their length, fit to be kept.

    orjson returns bytes whose allocation is rounded up to a power of two, at least 4 KiB, and
    never shrunk: a 470-byte hop held as it came from `orjson.dumps` costs 8 KiB of RSS. The copy
    costs ~0.1 µs (measured: 107 -> 207 ns per 490-byte hop).
    """
    return bytes(memoryview(orjson.dumps(obj)))


def decode(raw: bytes) -> Any:
    """The JSON value of an encoded hop."""
    return orjson.loads(raw)


def unpack(raw: bytes | None) -> list[dict[str, Any]]:
    """The hop messages of one internal message; raises on anything that is not ours."""
    data = orjson.loads(raw if raw is not None else b"")
    if isinstance(data, dict):  # one hop, as written before batching
        data = [data]
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise ValueError(f"internal message is a {type(data).__name__}, not a list of hops")
    return data


def event_time(msg: dict[str, Any]) -> int:
    """A hop's event time (ms); raises on a hop without one."""
    ts = msg["ts"] if "ts" in msg else msg["ev"]["ts"]  # a hop written before `ts` and `k` travelled
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError(f"hop event time is {type(ts).__name__}, not an int")
    return ts


def hop_event(msg: dict[str, Any]) -> dict[str, Any]:
    """A hop's event as a dict (`features.events.event_from_dict` reads it); raises on anything else."""
    ev = msg["ev"]
    data = orjson.loads(ev) if isinstance(ev, str) else ev  # a dict: written before the event travelled as text
    if not isinstance(data, dict):
        raise ValueError(f"hop event is a {type(data).__name__}, not an object")
    return data


def delivered_by(msg: dict[str, Any]) -> tuple[str, int]:
    """A hop's delivery origin and position: its raw input's, or where its previous hop was read (`via`)."""
    origin, offset = msg.get("via") or msg["src"]
    return str(origin), int(offset)


def via_origin(partition: int, lane: str) -> str:
    """The delivery origin of a hop read in hop partition `partition`, lane `lane` (`ordering.hold`)."""
    return f"hops:{partition}/{lane}"


def position(offset: int, index: int) -> int:
    """One int that orders hops by (message offset, index in the message), for de-duplication."""
    return offset * _SLOT + index


@lru_cache(maxsize=16_384)  # murmur2 is pure Python (~9 µs); entity keys repeat
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key`: where the entity's table shard lives."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Hop:
    """An `EntityHop` (as a dict) and the key of the entity it goes to next (None: scoring)."""

    key: bytes | None
    message: dict[str, Any]


class Outbox:
    """Hops on their way out of a stage, packed into one message per destination partition.

    A message holds up to `MAX_HOPS_PER_MESSAGE` hops and `max_bytes` bytes (1 MiB, or less
    where the broker's record limit is lower).
    """

    def __init__(self, partitions: int, max_bytes: int = _MAX_MESSAGE_BYTES) -> None:
        self.partitions = partitions
        self.max_bytes = min(max_bytes, _MAX_MESSAGE_BYTES)
        self._hops: dict[int, dict[Hashable, list[tuple[int, bytes]]]] = {}  # partition -> lane -> (ts, hop)
        self._score: dict[int, list[bytes]] = {}

    def add(self, hop: Hop, score_partition: int, lane: Hashable = None) -> bool:
        """Queue a hop: to its next entity's partition, or to `score_partition` when it is done.

        `lane` is where the hop's delivery position comes from (its raw or hop partition): a
        message interleaves its lanes by event time, each lane kept in the order it was added.
        False (and nothing queued) for a hop that alone exceeds a message: the stage dead-letters it.
        """
        raw = encode(hop.message)  # queued until `drain`: thousands per batch, so sized to fit
        if len(raw) + 2 > self.max_bytes:
            return False
        if hop.key is None:
            self._score.setdefault(score_partition % self.partitions, []).append(raw)
        else:
            lanes = self._hops.setdefault(partition_for(hop.key, self.partitions), {})
            ts = hop.message.get("ts")  # a hop without one (written before `ts` travelled) keeps its place
            lanes.setdefault(lane, []).append((ts if type(ts) is int else 0, raw))
        return True

    def __len__(self) -> int:
        hops = sum(len(q) for lanes in self._hops.values() for q in lanes.values())
        return hops + sum(map(len, self._score.values()))

    def drain(self) -> list[tuple[str, int, bytes]]:
        """("hops" or "score", partition, value) messages in queue order per partition; empties the box."""
        out = [("hops", p, v) for p, lanes in sorted(self._hops.items()) for v in _pack(_merge(lanes), self.max_bytes)]
        out += [("score", p, v) for p, hops in sorted(self._score.items()) for v in _pack(hops, self.max_bytes)]
        self._hops, self._score = {}, {}
        return out


def _merge(lanes: dict[Hashable, list[tuple[int, bytes]]]) -> list[bytes]:
    """One partition's hops, lowest event time first across lanes, each lane in its own order.

    One batch can carry many seconds of each input partition: queued lane after lane, a message
    would hold one source partition's minute before another's, and the hold orders only what it
    holds at once (`ordering.hold`). Within a lane the order is kept: the entity's redelivery
    check needs each origin's positions rising.
    """
    if len(lanes) == 1:
        return [raw for _, raw in next(iter(lanes.values()))]
    return [raw for _, raw in heapq.merge(*lanes.values(), key=itemgetter(0))]


def _pack(encoded: list[bytes], max_bytes: int) -> list[bytes]:
    chunks, chunk, size = [], [], 2  # the brackets
    for raw in encoded:
        if chunk and (len(chunk) >= MAX_HOPS_PER_MESSAGE or size + len(raw) > max_bytes):
            chunks.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 2
        chunk.append(raw)
        size += len(raw) + 1
    if chunk:
        chunks.append(b"[" + b",".join(chunk) + b"]")
    return chunks
