"""A stage's outgoing records: size-checked before they are sent, delivered in full before the batch ends."""

from __future__ import annotations

import asyncio
import base64

import pytest

from streams.agents.outgoing import Outgoing
from streams.metrics import Metrics
from streams.wire import DeadLetter, dead_letter
from tests.streams.conftest import metric_sum, parse_metrics


class _Topic:
    """Stands in for a Faust topic: records what was sent; the first `fail` sends raise or fail delivery."""

    def __init__(self, fail: int = 0, how: str = "raise") -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.fail = fail
        self.how = how

    async def send(self, *, key: bytes | None, value: bytes, partition: int | None = None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail -= 1
            if self.how == "raise":
                raise ConnectionError("broker away")
            fut.set_exception(ConnectionError("delivery failed"))
            return fut
        self.sent.append((key, value))
        fut.set_result(None)
        return fut


class _Message:
    topic, partition, offset = "t.to-score", 2, 41


def _outgoing(limit: int, dead: _Topic, metrics: Metrics) -> Outgoing:
    return Outgoing(deadletter_topic=dead, metrics=metrics, max_record_bytes=limit, now_ms=lambda: 1_767_603_600_000)


def _metrics(m: Metrics) -> dict:
    return parse_metrics(m.render().decode())


def test_an_oversized_record_becomes_a_too_large_dead_letter_and_the_rest_go() -> None:
    async def run() -> tuple[_Topic, _Topic, Metrics]:
        out_topic, dead, m = _Topic(), _Topic(), Metrics()
        out = _outgoing(1000, dead, m)
        assert await out.send(out_topic, key=b"k", value=b"x" * 500, record="threat", source=_Message())
        assert not await out.send(out_topic, key=b"k", value=b"y" * 5000, record="threat", source=_Message())
        await out.flush()
        return out_topic, dead, m

    out_topic, dead, m = asyncio.run(run())
    assert out_topic.sent == [(b"k", b"x" * 500)]
    assert len(dead.sent) == 1
    letter = DeadLetter.model_validate_json(dead.sent[0][1])
    assert (letter.reason, letter.source_topic, letter.source_offset) == ("too_large", "t.to-score", 41)
    assert letter.original_size == 5000 and letter.truncated and len(dead.sent[0][1]) <= 1000
    samples = _metrics(m)
    assert metric_sum(samples, "streamguard_records_too_large_total", record="threat") == 1
    # An oversized output is no input's outcome: the event was scored.
    assert metric_sum(samples, "streamguard_events_total") == 0


@pytest.mark.parametrize("how", ["raise", "fail"])
def test_failed_sends_are_retried_until_delivered(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.agents.outgoing as outgoing

    monkeypatch.setattr(outgoing, "_RETRY_FIRST_S", 0.0)

    async def run() -> tuple[_Topic, Metrics]:
        topic, m = _Topic(fail=3, how=how), Metrics()
        out = _outgoing(10_000, _Topic(), m)
        for i in range(5):
            await out.send(topic, key=None, value=b"%d" % i, record="hops", source=_Message())
        await out.flush()
        return topic, m

    topic, m = asyncio.run(run())
    assert sorted(v for _, v in topic.sent) == [b"0", b"1", b"2", b"3", b"4"]
    assert metric_sum(_metrics(m), "streamguard_send_retries_total") == 3


def test_a_dead_letter_is_cut_to_fit_the_record_limit() -> None:
    async def run() -> _Topic:
        dead = _Topic()
        out = _outgoing(20_000, dead, Metrics())
        letter = dead_letter("not_utf8", "x", topic="logs", partition=0, offset=1, raw=b"\xff" * 200_000,
                             received_at_ms=1)
        await out.dead_letter(b"logs", letter)
        await out.flush()
        return dead

    dead = asyncio.run(run())
    (key, value), = dead.sent
    assert len(key) + len(value) <= 20_000
    letter = DeadLetter.model_validate_json(value)
    assert letter.truncated and letter.original_size == 200_000 and base64.b64decode(letter.original_b64)
