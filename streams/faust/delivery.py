"""The worker's side of `watch`: notice input a stage never received, and have it fetched again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .fixes import request_rewind
from .internals import acked_offsets, committed_offset, committed_offsets
from .watch import OffsetWatch, StallWatch

if TYPE_CHECKING:
    from ..metrics import Metrics

__all__ = ["DeliveryWatch"]

log = logging.getLogger("streamguard.worker")


class DeliveryWatch:
    """Offset holes and stalled partitions of one worker's stages, counted and fetched again once."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.offsets = OffsetWatch()
        self.stalls = StallWatch()

    def check(self, stage: str, events: Iterable[Any]) -> None:
        """Count and log input offsets this stage never received (see `watch.OffsetWatch`).

        Only for our internal topics: raw topics may have holes by design (transaction markers,
        compaction).
        """
        committed = committed_offsets(self.app.consumer)
        for event in events:
            self.hole(stage, event, committed)

    def hole(self, stage: str, event: Any, committed: Mapping[Any, int]) -> int | None:
        """`check` for one event: the first offset of a hole before it, if this call asked for it again; else None.

        A stage that must see each partition in offset order (the hop stage) holds back the
        event and every later one until the hole's first offset arrives.
        """
        msg = event.message
        self.stalls.received(msg.topic, msg.partition, time.monotonic())
        missing = self.offsets.observe(stage, msg.topic, msg.partition, msg.offset, msg.generation_id,
                                       committed.get(msg.tp))
        if not missing:
            return None
        self.metrics.offset_gaps.labels(stage).inc(missing)
        log.warning("%s: %s[%d] offsets %d..%d never reached the stage; fetching them again", stage,
                    msg.topic, msg.partition, msg.offset - missing, msg.offset - 1)
        if not self.offsets.first_time(msg.topic, msg.partition, msg.offset - missing):
            return None
        request_rewind(self.app.consumer, msg.tp, msg.offset - missing)
        return msg.offset - missing

    def stall_tick(self, stages_by_topic: Mapping[str, str]) -> None:
        """Fetch again a partition whose stage lost a message (see `watch.StallWatch`).

        An internal partition left behind its end with nothing received; or any input
        partition, raw ones too, whose committed offset is held back by one message never
        acknowledged while later ones were (seen once on a raw partition after a rebalance,
        with two workers reading a backlog). `stages_by_topic` names each watched topic's
        stage; "ingest" marks raw topics. Also sets each stage's consumer lag (messages between
        committed offsets and partition ends) for the lag alert.
        """
        app, consumer = self.app, self.app.consumer
        if not app.flow_control.is_active() or app.rebalancing:
            self.stalls.reset()
            return
        now = time.monotonic()
        lag = dict.fromkeys(stages_by_topic.values(), 0)
        try:
            self._stalls(consumer, stages_by_topic, now, lag)
        finally:
            for stage, behind in lag.items():
                self.metrics.consumer_lag.labels(stage).set(behind)

    def _stalls(self, consumer: Any, stages_by_topic: Mapping[str, str], now: float, lag: dict[str, int]) -> None:
        for tp in consumer.assignment():
            stage = stages_by_topic.get(tp.topic)
            if stage is None:
                continue
            try:
                committed, end = committed_offset(consumer, tp), consumer.highwater(tp)
                acked = acked_offsets(consumer, tp)
            except Exception:  # noqa: BLE001 - revoked meanwhile, or nothing fetched yet
                continue
            if committed is not None and end is not None:
                lag[stage] += max(end - committed, 0)
            above = bool(acked) and committed is not None and min(acked) > committed
            if stage == "ingest" and not above:
                continue  # raw topics may have holes by design: only a commit held back is a stall
            if not self.stalls.stalled(tp.topic, tp.partition, committed, end, now, acked_above=above):
                continue
            if above and not self.offsets.first_time(tp.topic, tp.partition, committed):
                continue  # fetched again once already: a second time would only repeat the work
            why = "later offsets acknowledged" if above else "nothing received"
            log.warning("%s: %s[%d] committed %s of %s, %s for %.0f s; fetching again from %s", stage, tp.topic,
                        tp.partition, committed, end, why, self.stalls.after_s, committed)
            self.metrics.stalls.labels(stage).inc()
            request_rewind(consumer, tp, committed)
