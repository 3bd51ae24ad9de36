"""The live view of incidents, threats, healing actions and dead letters (shared by `tail` and `demo`)."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["REFRESH_S", "Record", "View", "decode_record"]


REFRESH_S = 0.25
_ROWS = 20  # rows kept on screen, shared between the tables shown
_SEVERITY_STYLE = {"low": "green", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}
_SEVERITY_ORDER = ("critical", "high", "medium", "low")
_ACTION_STYLE = {"block_ip": "bold red", "isolate_host": "bold red", "lock_account": "red", "rate_limit": "yellow",
                 "unblock_ip": "green", "alert": "cyan"}
_RAW_PREVIEW = 500  # characters of an unreadable record's value kept in --json output


@dataclass
class Record:
    """One consumed message: its kind, where it came from, and the parsed model or why it is unreadable."""

    kind: str  # "incident" | "threat" | "action" | "deadletter"
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    model: Any = None
    error: str | None = None
    raw: bytes = b""

    def to_json(self) -> dict[str, Any]:
        where = {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                 "timestamp_ms": self.timestamp_ms}
        if self.model is not None:
            return {"kind": self.kind, **where, "record": self.model.model_dump(mode="json")}
        return {"kind": "unreadable", "expected": self.kind, **where, "error": self.error, "size": len(self.raw),
                "raw": self.raw[:_RAW_PREVIEW * 4].decode("utf-8", "replace")[:_RAW_PREVIEW]}


def _why(exc: Exception, what: str) -> str:
    """A one-line reason a value is not a valid `what`."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            return f"not JSON: {errors[0].get('msg', '')}"
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'value'}: {e.get('msg', '')}" for e in errors[:3]]
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"not a {what}: " + "; ".join(parts) + more
    return f"{type(exc).__name__}: {exc}"


def decode_record(msg: Any, kind: str, model: Any) -> Record:
    """A consumed confluent-kafka message as a `Record`: the model if it validates, else why not."""
    ts_type, ts = msg.timestamp()
    value = msg.value()
    rec = Record(kind, msg.topic(), msg.partition(), msg.offset(), ts if ts_type else None, raw=value or b"")
    if not value:
        rec.error = "empty message (no value)"
        return rec
    try:
        rec.model = model.model_validate_json(value)
    except Exception as exc:  # noqa: BLE001 - any bad record is shown as unreadable, never ends the view
        rec.error = _why(exc, model.__name__)
    return rec


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(ms)


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_sentence(lines: list[str]) -> str:
    # The first line is the verdict (label, confidence), already in its own columns; the
    # second names the strongest driver with its number, which is what an analyst wants to see.
    if not lines:
        return ""
    text = (lines[1] if len(lines) > 1 else lines[0]).strip()
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def _ttl(seconds: int) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# Per table: title and (column, minimum width); the last column takes the remaining width.
_TABLES: dict[str, tuple[str, list[tuple[str, int]]]] = {
    "incident": ("Incidents", [("updated (UTC)", 14), ("status", 6), ("severity", 10), ("label", 12),
                               ("target", 15), ("threats", 7), ("risk", 4), ("actions", 0)]),
    "threat": ("Threats", [("time (UTC)", 14), ("severity", 10), ("label", 12), ("entity", 15), ("risk", 4),
                           ("reasoning", 0)]),
    "action": ("Healing actions", [("time (UTC)", 14), ("action", 12), ("target", 15), ("ttl", 4),
                                   ("dry-run", 7), ("reason", 0)]),
    "deadletter": ("Dead letters", [("time (UTC)", 14), ("reason", 12), ("source", 20), ("error", 0)]),
}


@dataclass
class View:
    """The Live view's state: the last rows of each table and the running counts."""

    kinds: list[str]
    topics: list[str]
    rows: dict[str, deque] = field(default_factory=dict)
    severities: Counter = field(default_factory=Counter)
    incidents: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    unreadable: Counter = field(default_factory=Counter)
    total: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        keep = max(5, _ROWS // max(1, len(self.kinds)))
        self.rows = {kind: deque(maxlen=keep) for kind in self.kinds}

    def add(self, rec: Record) -> None:
        self.total += 1
        m = rec.model
        if m is None:
            self.unreadable[rec.kind] += 1
            where = f"{rec.topic}:{rec.partition}@{rec.offset}"
            width = {"incident": 8, "threat": 6, "action": 6, "deadletter": 4}[rec.kind]
            self.rows[rec.kind].append(
                [_when(rec.timestamp_ms), Text("unreadable", style="bold magenta")] + [""] * (width - 3)
                + [Text(_cut(f"unreadable record {where}: {rec.error}", 160), style="magenta")])
        elif rec.kind == "incident":
            self.incidents[m.status] += 1
            self.rows["incident"].append([
                _when(m.updated_at_ms), m.status, Text(m.severity, style=_SEVERITY_STYLE.get(m.severity, "")),
                _cut(m.label, 22), _cut(m.target, 40), f"{m.threat_count:,}", str(m.max_risk),
                _cut(", ".join(sorted({a.action for a in m.actions})) or "-", 70),
            ])
        elif rec.kind == "threat":
            self.severities[m.severity] += 1
            self.rows["threat"].append([
                _when(m.event_time_ms), Text(m.severity, style=_SEVERITY_STYLE.get(m.severity, "")),
                _cut(m.ml_predicted_label, 22), _cut(m.entity.value, 40), str(m.ml_risk_score),
                _cut(_first_sentence(m.ml_reasoning), 70),
            ])
        elif rec.kind == "action":
            self.actions[m.action] += 1
            name = m.action + (" (degraded)" if m.degraded else "")
            self.rows["action"].append([
                _when(m.issued_at_ms), Text(name, style=_ACTION_STYLE.get(m.action, "")), _cut(m.target, 40),
                _ttl(m.ttl_s), "yes" if m.dry_run else "no", _cut(m.reason, 70),
            ])
        else:
            self.reasons[m.reason] += 1
            self.rows["deadletter"].append([
                _when(m.received_at_ms), Text(m.reason, style="yellow"),
                _cut(f"{m.source_topic}:{m.source_partition}@{m.source_offset}", 50), _cut(m.error, 80),
            ])

    def render(self, final: bool = False) -> Group:
        parts: list[Any] = []
        for kind in self.kinds:
            title, columns = _TABLES[kind]
            table = Table(title=title, title_justify="left", title_style="bold", expand=True, show_edge=False,
                          pad_edge=False)
            for i, (name, width) in enumerate(columns):
                last = i == len(columns) - 1
                table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=None if last else width,
                                 ratio=1 if last else None, justify="right" if name == "risk" else "left")
            for row in self.rows[kind]:
                # Plain Text cells: record contents must never be read as rich markup.
                table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
            parts.append(table)
        parts.append(self._counts())
        elapsed = time.monotonic() - self.started
        if final:
            status = f"stopped: {self.total:,} record(s) in {elapsed:,.1f} s"
        else:
            status = f"tailing {', '.join(self.topics)} · {self.total:,} records · {elapsed:,.0f} s · Ctrl-C to stop"
        parts.append(Text(status, style="dim"))
        if self.last_error:
            parts.append(Text(f"consumer: {self.last_error}", style="red"))
        return Group(*parts)

    def _counts(self) -> Text:
        text = Text()
        if "incident" in self.kinds:
            text.append("incident records: ", style="bold")
            text.append(" · ".join(f"{s} {self.incidents[s]:,}" for s in ("open", "closed")))
            text.append("\n")
        if "threat" in self.kinds:
            text.append("threats: ", style="bold")
            text.append(" · ".join(f"{s} {self.severities[s]:,}" for s in _SEVERITY_ORDER))
            text.append("\n")
        if "action" in self.kinds:
            text.append("actions: ", style="bold")
            text.append(" · ".join(f"{a} {n:,}" for a, n in self.actions.most_common()) or "none")
            text.append("\n")
        if "deadletter" in self.kinds:
            text.append("dead letters: ", style="bold")
            text.append(" · ".join(f"{r} {n:,}" for r, n in self.reasons.most_common()) or "none")
            text.append("\n")
        if self.unreadable:
            text.append("unreadable records: ", style="bold magenta")
            text.append(" · ".join(f"{k} {n:,}" for k, n in sorted(self.unreadable.items())))
            text.append("\n")
        text.rstrip()
        return text
