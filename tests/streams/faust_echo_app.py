"""A minimal Faust app run as a real worker process by test_faust_worker.py.

One agent forwards every message (key and value bytes unchanged) from an input topic to
an output topic. Configured by the test through ECHO_* variables.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=os.environ["ECHO_BROKER"],
    datadir=os.environ["ECHO_DATADIR"],
    store="memory://",
    value_serializer="raw",
    key_serializer="raw",
    web_enabled=False,
    topic_partitions=4,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["ECHO_IN"], value_type=bytes, key_type=bytes, partitions=4)
sink = app.topic(os.environ["ECHO_OUT"], value_type=bytes, key_type=bytes, partitions=4)


@app.agent(source)
async def echo(stream):
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
