"""Event-time order across partitions, stages and workers while a backlog is read.

`align` keeps raw partitions in step (pauses the ones too far ahead of the floor), `hold`
holds each entity hop until the floor has passed it, and `runtime` is the worker's glue:
what the consumer knows goes in, pauses and floor reports to the other workers come out.
"""

from .align import EventTimeAligner, WatermarkBoard
from .hold import HopHold, Released

__all__ = ["EventTimeAligner", "HopHold", "Released", "WatermarkBoard"]
