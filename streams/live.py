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
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pydantic import ValidationError

from scoring.live import LiveRow, LiveRows

from .control import ControlRejected, Verifier
from .kafka import client_conf
from .settings import Settings
from .topics import topic_names
from .wire import HealingAction, LiveSample

__all__ = ["read_history", "read_live"]

log = logging.getLogger("streamguard.retrain")


def read_history(s: Settings, topic: str, *, since_ms: int | None = None,
                 timeout_s: float = 30.0) -> Iterator[Any]:
    """Every record of `topic` from `since_ms` (or its start) to its end as of now; no consumer group."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer({**client_conf(s.kafka_bootstrap, s), "group.id": f"history-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        md = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            return
        parts = sorted(md.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in parts}
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING if since_ms is None else since_ms) for p in parts]
        if since_ms is not None:
            starts = consumer.offsets_for_times(starts, timeout=timeout_s)
        # A partition with nothing at or after `since_ms` answers -1: nothing to read there.
        left = {tp.partition: ends[tp.partition] for tp in starts
                if ends[tp.partition] > 0 and (since_ms is None or 0 <= tp.offset < ends[tp.partition])}
        consumer.assign([tp for tp in starts if tp.partition in left])
        while left:
            batch = consumer.consume(500, timeout_s)
            if not batch:
                raise KafkaException(f"no record of {topic} within {timeout_s:g} s")
            for msg in batch:
                if msg.error() is not None or msg.partition() not in left:
                    continue
                if msg.offset() + 1 >= left[msg.partition()]:
                    left.pop(msg.partition())
                yield msg
    finally:
        consumer.close()


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
