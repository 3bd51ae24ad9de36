"""The normalised event every parser produces and every window and model consumes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

__all__ = ["Event", "EventKind", "AuthOutcome", "LABEL_BENIGN", "TRUNCATED", "event_from_dict"]

LABEL_BENIGN = "benign"
TRUNCATED = "…[cut]"  # appended to client text cut to its field's limit
# Characters kept of each free-text field (`Event.__post_init__`).
_TEXT_LIMITS = (("message", 8192), ("path", 8192), ("user_agent", 1024), ("user", 256), ("host", 256),
                ("service", 256), ("src_host", 256), ("method", 32), ("level", 32))


class EventKind(str, enum.Enum):
    """What sort of observation an event is."""

    AUTH = "auth"  # sshd/PAM/su login attempts and sessions
    HTTP = "http"  # web access log requests
    APP = "app"  # JSON application log records
    FLOW = "flow"  # network flows (minimal schema or CICFlowMeter)


class AuthOutcome(str, enum.Enum):
    """Result of an authentication attempt."""

    SUCCESS = "success"
    FAILURE = "failure"
    INVALID_USER = "invalid_user"  # failure for a user name that does not exist
    SESSION = "session"  # session opened/closed: not an attempt


@dataclass(frozen=True, slots=True)
class Event:
    """One normalised observation. `ts` is timezone-aware UTC; absent fields are None.

    `label` is ground truth where the input carries it (CICIDS2017 rows, the scenario
    generator); it never reaches a feature.
    """

    kind: EventKind
    ts: datetime
    source: str  # the parser that produced it: sshd, access_log, app_json, cicflowmeter, flow_json
    src_ip: str | None = None  # a valid IPv4/IPv6 address, normalised
    src_host: str | None = None  # remote host as reported when it is a name, e.g. sshd's rhost=
    dst_ip: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    protocol: int | None = None  # IANA number: 6 TCP, 17 UDP, 1 ICMP
    host: str | None = None  # the reporting host (syslog hostname, virtual host)
    user: str | None = None
    service: str | None = None
    # auth
    auth_outcome: AuthOutcome | None = None
    # http
    method: str | None = None
    path: str | None = None  # path and query, as requested (still URL-encoded)
    status: int | None = None
    response_bytes: int | None = None
    user_agent: str | None = None
    response_time_ms: float | None = None  # http and app
    # app
    level: str | None = None
    message: str | None = None
    # flow
    duration_s: float | None = None
    fwd_packets: int | None = None
    bwd_packets: int | None = None
    fwd_bytes: int | None = None
    bwd_bytes: int | None = None
    syn_count: int | None = None
    ack_count: int | None = None
    fin_count: int | None = None
    rst_count: int | None = None
    psh_count: int | None = None
    urg_count: int | None = None
    label: str | None = None
    extra: dict[str, float] = field(default_factory=dict)  # parser-specific numeric extras

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("Event.ts must be timezone-aware")
        # Client-written text is cut to a fixed size, so no event, hop, state or threat built
        # from it can grow with what an attacker sends (a 1 MiB line of control characters was
        # a 6 MB hop once JSON-escaped). Web servers cut request lines near 8 KiB themselves.
        for name, limit in _TEXT_LIMITS:
            value = getattr(self, name)
            if value is not None and len(value) > limit:
                object.__setattr__(self, name, value[:limit] + TRUNCATED)

    @property
    def ts_ms(self) -> int:
        """Event time as integer milliseconds since the epoch (the wire form)."""
        return int(self.ts.timestamp() * 1000)

    def with_label(self, label: str | None) -> Event:
        """A copy with another ground-truth label."""
        return replace(self, label=label)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data: enums as strings, `ts` as integer ms; None fields left out."""
        # Field by field rather than `dataclasses.asdict`, which deep-copies every value: this
        # runs once per event on the ingest path, where asdict cost ~15 % of a worker's CPU.
        out: dict[str, Any] = {}
        for key in _FIELDS:
            value = getattr(self, key)
            if value is None:
                continue
            if key == "ts":
                out["ts"] = self.ts_ms
            elif key == "extra":
                if value:
                    out["extra"] = dict(value)
            elif isinstance(value, enum.Enum):
                out[key] = value.value
            else:
                out[key] = value
        return out


_FIELDS = tuple(f.name for f in fields(Event))


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of `Event.to_dict` for trusted data (snapshots, tests); parsers validate raw input."""
    d = dict(data)
    d["kind"] = EventKind(d["kind"])
    d["ts"] = datetime.fromtimestamp(d["ts"] / 1000, tz=UTC)
    if d.get("auth_outcome") is not None:
        d["auth_outcome"] = AuthOutcome(d["auth_outcome"])
    return Event(**d)
