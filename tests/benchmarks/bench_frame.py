"""The frame's ceiling: raw messages/s through a Faust stream that does nothing, against the Kafka clients.

Run with `python -m tests.benchmarks.bench_frame [--messages N]` (needs the local broker,
`make kafka-up`); writes var/bench/frame.json. Each reader consumes the same topic of N
syslog-sized messages from the start: confluent-kafka `consume(1000)`, aiokafka
`getmany(max_records=1000)` (alone, and with streamguard's ingest on every message and its
first hops produced), and a Faust agent on `take_events(1000)` that only counts (in a
subprocess: Faust owns its process). The bare readers do no work on any message, so each figure is the
most that reader can ever deliver to the pipeline on this machine. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

OUT = Path("var/bench")
BOOT = os.environ.get("STREAMGUARD_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
LINE = b"<38>Jan  5 09:00:01 web1 sshd[1234]: Failed password for root from 203.0.113.7 port 50000 ssh2"

_FAUST = '''
import os, sys, time, faust
topic, n, boot = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = faust.App("bench-frame-" + topic, broker="kafka://" + boot, store="memory://", web_enabled=False,
                datadir=sys.argv[4])
src = app.topic(topic, value_type=bytes, value_serializer="raw")
seen, start = 0, None

@app.agent(src)
async def count(stream):
    global seen, start
    async for batch in stream.take_events(1000, within=0.05):
        start = start or time.monotonic()
        seen += len(batch)
        if seen >= n:
            os.write(1, f"SECONDS {time.monotonic() - start}\\n".encode())  # Faust redirects print to its log
            os._exit(0)

sys.argv = [sys.argv[0], "worker", "-l", "error"]
app.main()
'''


def _topic(n: int) -> str:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-frame-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOT})
    made = admin.create_topics([NewTopic(name, 4, 1), NewTopic(name + "-hops", 4, 1)])
    for f in made.values():
        f.result()
    p = Producer({"bootstrap.servers": BOOT, "linger.ms": 20})
    for i in range(n):
        p.produce(name, LINE, key=str(i % 64).encode())
        if i % 10_000 == 0:
            p.poll(0)
    p.flush()
    return name


def _confluent(topic: str, n: int) -> float:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": BOOT, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen, start = 0, None
    while seen < n:
        got = c.consume(1000, timeout=1.0)
        if got and start is None:
            start = time.monotonic()
        seen += sum(1 for m in got if not m.error())
    c.close()
    return time.monotonic() - start


async def _aiokafka(topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=uuid.uuid4().hex, auto_offset_reset="earliest")
    await c.start()
    seen, start = 0, None
    while seen < n:
        got = await c.getmany(timeout_ms=1000, max_records=1000)
        k = sum(len(v) for v in got.values())
        if k and start is None:
            start = time.monotonic()
        seen += k
    await c.stop()
    return time.monotonic() - start


async def _aiokafka_ingest(topic: str, n: int) -> float:
    """aiokafka `getmany`, then streamguard's ingest (parse, first hops packed) and the hops produced."""
    from datetime import UTC, datetime, timedelta

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from features.parsing import TimeBounds
    from streams.agents.ingest import Ingested, ingest
    from streams.internal import Outbox

    bounds = TimeBounds(max_future=timedelta(days=3650), not_before=datetime(2000, 1, 1, tzinfo=UTC))
    c = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=uuid.uuid4().hex, auto_offset_reset="earliest")
    p = AIOKafkaProducer(bootstrap_servers=BOOT, linger_ms=5, max_request_size=4 * 1024 * 1024)
    await c.start()
    await p.start()
    seen, start = 0, None
    while seen < n:
        got = await c.getmany(timeout_ms=1000, max_records=1000)
        if got and start is None:
            start = time.monotonic()
        box, now = Outbox(4), datetime.now(UTC)
        for tp, records in got.items():
            for r in records:
                out = ingest(r.value, input_kind="logs", topic=tp.topic, partition=tp.partition, offset=r.offset,
                             now=now, bounds=bounds)
                if isinstance(out, Ingested):
                    box.add(out.hop, tp.partition)
            seen += len(records)
        sent = [await p.send(topic + "-hops", value=v, partition=part) for _, part, v in box.drain()]
        for fut in sent:
            await fut
    elapsed = time.monotonic() - start
    await c.stop()
    await p.stop()
    return elapsed


def _faust(topic: str, n: int, timeout_s: float) -> float:
    with tempfile.TemporaryDirectory(prefix="sg-frame-") as tmp:
        out = subprocess.run([sys.executable, "-c", _FAUST, topic, str(n), BOOT, tmp], capture_output=True,
                             text=True, timeout=timeout_s)
    for line in out.stdout.splitlines():
        if line.startswith("SECONDS "):
            return float(line.split()[1])
    raise RuntimeError(f"the Faust reader gave no figure:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000, help="messages each reader consumes")
    ap.add_argument("--timeout", type=float, default=600, help="longest wait for the Faust reader, seconds")
    args = ap.parse_args()
    topic = _topic(args.messages)
    n = args.messages
    rates = {"confluent_kafka_consume_1000": n / _confluent(topic, n),
             "aiokafka_getmany_1000": n / asyncio.run(_aiokafka(topic, n)),
             "aiokafka_getmany_1000_with_streamguard_ingest": n / asyncio.run(_aiokafka_ingest(topic, n)),
             "faust_take_events_1000": n / _faust(topic, n, args.timeout)}
    report = {"messages": n, "messages_per_s": rates,
              "faust_vs_aiokafka": rates["faust_take_events_1000"] / rates["aiokafka_getmany_1000"]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "frame.json").write_text(json.dumps(report, indent=2))
    for name, rate in rates.items():
        print(f"{name:48s} {rate:>12,.0f} messages/s")
    print(f"Faust delivers {report['faust_vs_aiokafka']:.1%} of what its own Kafka client reads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
