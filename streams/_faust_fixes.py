"""Two fixes to faust-streaming's offset bookkeeping that otherwise lose input around a rebalance.

Both were found by our crash test (a SIGKILL, then a restarted worker that goes through two
rebalances while the dead member's session expires): a handful of input events were committed
but never processed.

1. A stream *skips* a message that was fetched before a rebalance (flow control off, or an
   older consumer generation) and then *acks* it "so the lag does not grow". The next commit
   can then move past a message nobody processed; the seek after the rebalance starts behind
   it, so it is never seen again. Such a message was never tracked by the stream (tracking
   happens after the skip test), so we refuse to ack untracked messages: the seek to the
   committed offset that ends every rebalance fetches them again (at-least-once).
2. `Consumer._new_offset` holds back a commit when the lowest acked offset is not the
   committed one, but tests `min(acked) - committed > 1` (one off: `committed` is the next
   offset to read) and skips the test when `committed` is 0. A commit could then pass over one
   message still in flight. We test `min(acked) > committed` whenever `committed` is known.

A third loss, in faust's fetch loop (a message dropped when flow is suspended mid-hand-over),
cannot be patched from outside that loop; `streams._offsets` notices it and seeks back.

`apply()` is idempotent; `skipped_unacked()` counts fix 1 at work and `on_skip` hears of each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faust.transport import consumer as _consumer

__all__ = ["apply", "skipped_unacked"]

log = logging.getLogger("streamguard.worker")

_state: dict[str, Any] = {"applied": False, "skipped": 0, "on_skip": None}


def skipped_unacked() -> int:
    """Messages a stream skipped during a rebalance that were left for the re-fetch."""
    return _state["skipped"]


def _ack(original: Any) -> Any:
    def ack(self: Any, message: Any) -> bool:
        if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
            # Skipped before the stream tracked it: leave it unacked so it is fetched again.
            _state["skipped"] += 1
            if _state["on_skip"] is not None:
                _state["on_skip"]()
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


def apply(on_skip: Callable[[], None] | None = None) -> None:
    """Patch faust's Consumer once per process; `on_skip` is called for each message left unacked."""
    _state["on_skip"] = on_skip
    if _state["applied"]:
        return
    cls = _consumer.Consumer
    cls.ack = _ack(cls.ack)
    cls._new_offset = _new_offset(cls._new_offset)
    _state["applied"] = True
