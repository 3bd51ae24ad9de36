"""The retrain worker's view of live traffic: sampled rows, blocks, unblocks and analysts' labels, read back.

Workers write sampled feature rows to `features.sample` (`agents.score`); healing writes blocks
to `actions.healing`; operators unblock and allowlist, and analysts label, through signed
commands on `ops.control`. Before each run the retrain worker reads the last
`live_window_hours` of the three topics into `scoring.live.LiveRows`, which labels the rows.
Nothing here trusts a message it cannot check: a malformed record is counted and skipped, a
control command counts only with a valid signature of this deployment.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import ValidationError

from features.simulation.formats import SCENARIO_LABELS
from scoring.live import LiveRow, LiveRows

from .control import ControlRejected, Verifier
from .kafka import read_history
from .settings import Settings
from .topics import topic_names
from .wire import HealingAction, LiveSample

__all__ = ["read_live"]

log = logging.getLogger("streamguard.retrain")


def read_live(s: Settings, *, now_ms: int | None = None,
              progress: Callable[[str], None] = lambda _: None) -> tuple[LiveRows, dict[str, Any]]:
    """The labelled live sample of the last `live_window_hours`, and what was read (counts, for the run's record)."""
    names = topic_names(s)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    since_ms = now_ms - int(s.live_window_hours * 3600 * 1000)
    live = LiveRows(per_label=s.live_rows_per_label)
    read = {"samples": 0, "rows": 0, "blocks": 0, "unblocks": 0, "allowlisted": 0, "labels": 0, "skipped": 0}
    for msg in read_history(s, names.sample, since_ms=since_ms):
        try:
            sample = LiveSample.model_validate_json(msg.value() or b"")
        except ValidationError:
            read["skipped"] += 1
            continue
        read["samples"] += 1
        for r in sample.rows:
            row = LiveRow(r.event_id, r.ts_ms, r.source, r.label, r.risk, r.flagged, np.asarray(r.x, dtype=np.float64))
            read["rows"] += live.offer(row, sample.feature_schema_version)
    # Blocks and operator commands from a day before the rows: a block issued earlier still names
    # its address, and an unblock of it may come any time after.
    for msg in read_history(s, names.actions, since_ms=since_ms - 86_400_000):
        try:
            action = HealingAction.model_validate_json(msg.value() or b"")
        except ValidationError:
            read["skipped"] += 1
            continue
        if action.action == "block_ip" and not action.dry_run and not action.degraded:
            live.blocked(action.target)
            read["blocks"] += 1
    verifier = Verifier(s.signing_secret.get_secret_value(), app_id=s.app_id, window_s=s.control_window_s)
    for msg in read_history(s, names.control, since_ms=since_ms - 86_400_000):
        try:
            cmd = verifier.verify(msg.value() or b"", now_ms=now_ms, check_time=False).command
        except ControlRejected:
            read["skipped"] += 1
            continue
        if cmd.op == "unblock" and cmd.target:
            live.undone(cmd.target)
            read["unblocks"] += 1
        elif cmd.op == "allowlist" and cmd.action == "add" and cmd.cidr:
            live.undone_network(ipaddress.ip_network(cmd.cidr))
            read["allowlisted"] += 1
        elif cmd.op == "label" and cmd.label not in SCENARIO_LABELS:
            read["skipped"] += 1  # signed, but a label no model knows: it would make a class of a few rows
        elif cmd.op == "label" and cmd.label:
            if cmd.event_id:
                live.label_event(cmd.event_id, cmd.label)
            if cmd.target:
                live.label_source(cmd.target, cmd.label)
            read["labels"] += 1
    read["refused"] = dict(live.refused)
    progress(f"live traffic of the last {s.live_window_hours:g} h: {read['rows']:,} sampled rows, "
             f"{read['blocks']} blocks, {read['unblocks']} unblocks, {read['allowlisted']} allowlisted, "
             f"{read['labels']} analyst labels ({read['skipped']} records skipped)")
    return live, read
