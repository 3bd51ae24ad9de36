"""Four fixes to faust-streaming's offset bookkeeping that otherwise lose input around a rebalance.

All were found by our crash tests (SIGKILLs, then restarted workers that go through two
rebalances while the dead member's session expires): a handful of input events were committed
but never processed, or a partition stopped committing for good.

1. A stream *skips* a message that was fetched before a rebalance (flow control off, or an
   older consumer generation) and then *acks* it "so the lag does not grow". The next commit
   can then move past a message nobody processed; the seek after the rebalance starts behind
   it, so it is never seen again. Such a message was never tracked by the stream (tracking
   happens after the skip test), so we refuse to ack untracked messages. The seek to the
   committed offset that ends a rebalance fetches them again, but only if the skip came
   before it; so the fetch loop also seeks back to a skipped message its read position has
   already passed (at-least-once).
2. `Consumer._new_offset` holds back a commit when the lowest acked offset is not the
   committed one, but tests `min(acked) - committed > 1` (one off: `committed` is the next
   offset to read) and skips the test when `committed` is 0. A commit could then pass over one
   message still in flight. We test `min(acked) > committed` whenever `committed` is known.
3. The fetch loop hands each message to the streams with
   `wait_first(callback(message), suspend_flow.wait())` and moves its read offset past the
   message whichever wins. Flow is suspended from a rebalance's start until table recovery
   has sought to the committed offsets *and* the streams resumed; a message fetched in that
   window (after the seek) loses the race, is never delivered, and nothing fetches it again.
   The stage then sees offset N+k after N-1. We copy the loop with one change: a message
   that was not delivered leaves its partition's read offset alone, later messages of that
   partition in the same fetch are passed over, and the partition is sought back to it, so
   the next fetch starts there (at-least-once). The same loop also seeks back when a stage
   reports offsets it never received (`request_rewind`): in one crash test a partition's
   first messages after a restart never arrived by any path we could find, and the hole
   held every later commit of the partition back for good.

4. `getmany` drops a fetched record whose partition left the active set while the fetch was
   in flight (paused: by table recovery, or by our event-time alignment), after the fetch has
   moved the partition's position past it. Nothing fetches it again; with alignment pausing
   input partitions this lost input and, when the slowest partition was hit, stopped
   ingest for good. We deliver such records (pausing is about later fetches).

`apply()` is idempotent; `skipped_unacked()` counts fixes 1 and 3 at work and `on_skip` hears of each.
Call it through `streams.faust.apply`, which first checks the installed versions.

Two private attributes of ours live on faust's Consumer: `REWIND_ATTR` (partition -> offset a
stage asked the fetch loop to seek back to, see `request_rewind`) and `SKIPPED_ATTR` (partition
-> lowest offset a stream skipped without acking, fix 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from faust.transport import consumer as _consumer

__all__ = ["REWIND_ATTR", "SKIPPED_ATTR", "apply", "pending_rewind", "request_rewind", "skipped_unacked"]

log = logging.getLogger("streamguard.worker")

_state: dict[str, Any] = {"applied": False, "skipped": 0, "on_skip": None}

REWIND_ATTR = "_sg_rewind"
SKIPPED_ATTR = "_sg_skipped"


def skipped_unacked() -> int:
    """Messages a stream skipped during a rebalance that were left for the re-fetch."""
    return _state["skipped"]


def _ack(original: Any) -> Any:
    def ack(self: Any, message: Any) -> bool:
        if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
            # Skipped before the stream tracked it: leave it unacked so it is fetched again. The
            # seek that ends a rebalance fetches it again if it comes later; if the skip comes
            # after that seek, only the fetch loop can (see `_drain_messages`).
            skipped = self.__dict__.setdefault(SKIPPED_ATTR, {})
            skipped[message.tp] = min(message.offset, skipped.get(message.tp, message.offset))
            _skipped()
            return False
        return original(self, message)

    return ack


def _new_offset(original: Any) -> Any:
    def new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
            return None  # the message at `committed` is still in flight (or was skipped)
        return original(self, tp)

    return new_offset


def _skipped() -> None:
    _state["skipped"] += 1
    if _state["on_skip"] is not None:
        _state["on_skip"]()


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - runs in a worker
    """faust 0.15.3's `Consumer._drain_messages`, but a message not delivered is fetched again (fix 3)."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    yield_every, num_since_yield = 100, 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(_consumer.CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await self.sleep(0)  # getmany may not release the loop
            if not self.should_stop:
                rewind: dict[Any, int] = {}  # partition -> first offset not delivered
                asked: dict[Any, int] = self.__dict__.setdefault(REWIND_ATTR, {})
                skipped: dict[Any, int] = self.__dict__.setdefault(SKIPPED_ATTR, {})
                while skipped:  # skipped by a stream (fix 1): fetch again unless a seek went back already
                    tp, offset = skipped.popitem()
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and r_offset >= offset:
                        asked[tp] = min(offset, asked.get(tp, offset))
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    if tp in asked:  # a stage found a hole behind this partition's position
                        rewind[tp] = min(asked.pop(tp), rewind.get(tp, offset))
                    if tp in rewind:
                        continue  # behind a message not delivered: fetched again after the seek
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        delivery = asyncio.ensure_future(callback(message))
                        await self.wait_first(delivery, self.suspend_flow.wait())
                        if delivery.done() and not delivery.cancelled():
                            set_read_offset(tp, offset)
                        else:  # flow was suspended first: faust would drop it here
                            rewind[tp] = offset
                            _skipped()
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                while asked:  # holes in partitions this fetch did not touch
                    tp, offset = asked.popitem()
                    rewind[tp] = min(offset, rewind.get(tp, offset))
                for tp, offset in rewind.items():
                    try:
                        await self.seek(tp, offset)
                    except Exception as exc:  # noqa: BLE001 - revoked meanwhile: the rebalance's seek covers it
                        log.info("could not seek %s back to %d: %r", tp, offset, exc)
                unset_flag(_consumer.CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(_consumer.CONSUMER_FETCHING)


async def _getmany(self: Any, timeout: float) -> Any:  # pragma: no cover - runs in a worker
    """faust 0.15.3's `Consumer.getmany`, but a record of a partition paused meanwhile is delivered (fix 4)."""
    records, _active = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    records_it = self.scheduler.iterate(records)
    to_message = self._to_message
    if self.flow_active:
        for tp, record in records_it:
            # Both breaks drop records the fetch already moved past; the rebalance behind each
            # ends with a seek to the committed offsets, which fetches them again.
            if not self.flow_active:
                break
            if self.app.consumer_generation_id != generation_id:
                break
            # faust drops the record here when its partition left the active set during the
            # fetch (paused): the position has moved past it and nothing fetches it again.
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, to_message(tp, record)
    else:
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - as faust: the next rebalance seeks again
            self.log.warning(f"exception performing seek when flow not active {exc}")


def request_rewind(consumer: Any, tp: Any, offset: int) -> None:
    """Have the fetch loop seek `tp` back to `offset` (after the messages it is handing over now).

    For a stage that found offsets it never received. Seeking from outside the loop does not
    work: messages of the fetch in progress move the read offset forward again, and the
    re-fetched ones are then dropped as already read.
    """
    asked = consumer.__dict__.setdefault(REWIND_ATTR, {})
    asked[tp] = min(offset, asked.get(tp, offset))


def pending_rewind(consumer: Any, tp: Any) -> int | None:
    """The offset the fetch loop has been asked to seek `tp` back to and has not yet (None: none)."""
    return consumer.__dict__.get(REWIND_ATTR, {}).get(tp)


def apply(on_skip: Callable[[], None] | None = None) -> None:
    """Patch faust's Consumer once per process; `on_skip` is called for each message left unacked.

    Unchecked: use `streams.faust.apply`, which refuses versions the patches were not written for.
    """
    _state["on_skip"] = on_skip
    if _state["applied"]:
        return
    cls = _consumer.Consumer
    cls.ack = _ack(cls.ack)
    cls._new_offset = _new_offset(cls._new_offset)
    cls._drain_messages = _drain_messages
    cls.getmany = _getmany
    _state["applied"] = True
