"""The consumer loop shared by the enforcement commands: healing actions in, one acknowledgement each out."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from ..kafka import client_conf
from ..settings import Settings
from ..topics import TopicNames
from ._common import kafka_detail, say

__all__ = ["Outcome", "run_actions"]

_SEEN_MAX = 100_000  # action ids remembered against redelivery, most recent kept

# What a handler did with one action: (outcome, detail, commands run or shown).
Outcome = tuple[str, str, list[str]]


def run_actions(s: Settings, names: TopicNames, *, group: str, enforcer: str, max_actions: int | None,
                handle: Callable[[Any, int], Outcome],
                dead_letter_for: Callable[[Any, str, str], Any] | None = None, batch: int = 100) -> int:
    """Consume actions.healing with `group`, call `handle(action, now_ms)` once per action id, acknowledge each on
    actions.applied, commit after the acknowledgements are on the broker (at least once); the number handled.

    A record that is no healing action is dead-lettered (`wrong_type`); `dead_letter_for(message, outcome, detail)` may
    return a dead letter for an action that was handled but failed (e.g. not delivered). Stops on SIGTERM, Ctrl-C
    or after `max_actions`.
    """
    from confluent_kafka import Consumer, Producer

    from ..wire import AppliedAction, HealingAction, dead_letter

    host = f"{enforcer}{socket.gethostname()}:{os.getpid()}"
    consumer = Consumer({**client_conf(s.kafka_bootstrap), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "log_level": 0,
                         # A handler may wait (a webhook receiver that is down: retries, timeouts) far longer
                         # than the default 5 minutes between polls; the group must not drop the member for it.
                         "max.poll.interval.ms": 3_600_000})
    producer = Producer({**client_conf(s.kafka_bootstrap), "enable.idempotence": True, "log_level": 0})
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    seen: dict[str, None] = {}
    done = 0
    try:
        consumer.subscribe([names.actions])
        while not stop["now"] and (max_actions is None or done < max_actions):
            msgs = consumer.consume(batch, timeout=0.5)
            for msg in msgs:
                if msg.error():
                    say(f"[yellow]consumer[/] {escape(kafka_detail(str(msg.error())))}")
                    continue
                try:
                    action = HealingAction.model_validate_json(msg.value() or b"")
                except ValueError as exc:
                    # Not an action: nothing to enforce, but kept with its reason, like any refused input.
                    why = str(exc).splitlines()[0]
                    letter = dead_letter("wrong_type", f"not a healing action: {why}", topic=msg.topic(),
                                         partition=msg.partition(), offset=msg.offset(), raw=msg.value() or b"",
                                         received_at_ms=int(time.time() * 1000))
                    producer.produce(names.deadletter, key=msg.topic().encode(),
                                     value=letter.model_dump_json().encode())
                    say(f"[yellow]dead-lettered[/] an unreadable record at {msg.topic()}[{msg.partition()}]@"
                        f"{msg.offset()}: {escape(why)}")
                    continue
                if action.action_id in seen:
                    continue
                outcome, detail, commands = handle(action, int(time.time() * 1000))
                record = AppliedAction(action_id=action.action_id, action=action.action, target=action.target,
                                       outcome=outcome, detail=detail, commands=commands, enforcer=host,
                                       at_ms=int(time.time() * 1000))
                producer.produce(names.applied, key=action.target.encode(), value=record.model_dump_json().encode())
                letter = dead_letter_for(msg, outcome, detail) if dead_letter_for else None
                if letter is not None:
                    producer.produce(names.deadletter, key=msg.topic().encode(),
                                     value=letter.model_dump_json().encode())
                say(f"{outcome:8} {action.action} {escape(action.target[:64])}: {escape(detail)}")
                seen[action.action_id] = None
                if len(seen) > _SEEN_MAX:
                    del seen[next(iter(seen))]
                done += 1
            if msgs:
                # Acknowledgements are on the broker before the inputs are committed: at least once.
                if producer.flush(30) != 0:
                    raise RuntimeError("acknowledgements to the applied-actions topic were not delivered in 30 s")
                consumer.commit(asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(30)
        consumer.close()
    return done
