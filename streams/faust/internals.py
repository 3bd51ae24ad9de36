"""Reads and writes of faust's and aiokafka's private state, each behind one named function.

faust-streaming keeps the consumer's bookkeeping (committed, read and acknowledged offsets)
in private attributes; the stages need it to notice lost messages, to align partitions on
event time and to write table state before an offset commit. Nothing outside
`streams.faust` touches a private attribute of faust or aiokafka: add a function here
instead, written against the pinned versions (`streams.faust.PINNED`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .fixes import pending_rewind

__all__ = [
    "acked_offsets",
    "committed_offset",
    "committed_offsets",
    "consumer_state",
    "read_offset",
    "refresh_metadata",
    "write_through",
]


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The group's committed offset of `tp` as the consumer knows it (the next offset to read)."""
    return consumer._committed_offset.get(tp)


def committed_offsets(consumer: Any) -> dict[Any, int | None]:
    """Every partition's committed offset (a live mapping: read it, never write it)."""
    return consumer._committed_offset


def read_offset(consumer: Any, tp: Any) -> int | None:
    """The offset of the last message of `tp` handed to a stream (None: none yet)."""
    return consumer._read_offset.get(tp)


def acked_offsets(consumer: Any, tp: Any) -> list[int]:
    """Offsets of `tp` acknowledged by the streams and not yet committed."""
    return consumer._acked.get(tp) or []


async def refresh_metadata(consumer: Any) -> None:
    """Have an aiokafka consumer fetch cluster metadata now (a topic created meanwhile becomes known)."""
    await consumer._client.force_metadata_update()


async def write_through(app: Any, table: Any, items: Iterable[tuple[Any, Any]]) -> None:
    """Set table keys (None deletes one) and wait until the broker has their changelog records.

    `table[key] = value` only queues the changelog record, and Faust's flush before an
    offset commit can return with records still queued (it gives up after 0.1 s). A crash
    then loses state whose inputs are already committed. Waiting here, before the batch is
    acknowledged, closes that gap: committed input always has its state in the changelog.

    The records go straight to the producer, not through Faust's `send_soon` buffer: after
    a crash-restart, futures from that buffer were seen never to resolve, which stopped the
    stage for good (one partition, no error logged).
    """
    topic = table.changelog_topic
    name = topic.get_topic_name()
    producer = app.producer
    futures = []
    for key, value in items:
        k, _ = topic.prepare_key(key, table.key_serializer)
        if value is None:  # a tombstone: compaction forgets the key, and so does a changelog recovery
            table.data.pop(key, None)
            v = None
        else:
            table.data[key] = value  # the local store, without a second changelog record
            v, _ = topic.prepare_value(value, table.value_serializer)
        futures.append(await producer.send(name, k, v, partition=None, timestamp=None, headers=None))
    if futures:
        await asyncio.gather(*futures)


def consumer_state(app: Any) -> str:
    """Per assigned partition: committed, read and fetch positions, acks in flight, pause flags."""
    try:
        c = app.consumer
        inner = c._thread._consumer  # the aiokafka consumer
        assignment = inner._subscription.subscription.assignment
        lines = [f"flow_control active={app.flow_control.is_active()} generation={app.consumer_generation_id}"]
        for tp in sorted(assignment.tps, key=lambda t: (t.topic, t.partition)):
            st = assignment.state_value(tp)
            acked = acked_offsets(c, tp)
            lines.append(f"{tp.topic}[{tp.partition}] committed={committed_offset(c, tp)} "
                         f"read={read_offset(c, tp)} position={st.position if st.has_valid_position else None} "
                         f"paused={st.paused} acked={len(acked)}:{min(acked) if acked else None} "
                         f"gaps={len(c._gap.get(tp) or [])} rewind={pending_rewind(c, tp)}")
        return "\n".join(lines) + "\n"
    except Exception as exc:  # noqa: BLE001 - a diagnostic page must not fail on faust internals
        return f"consumer state unavailable: {exc!r}\n"
