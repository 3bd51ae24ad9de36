"""What PromQL in the shipped rules and dashboard may name: the metrics a worker exports, as scraped."""

from __future__ import annotations

import re

from streams.metrics import Metrics

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}
# Prometheus's own series: `up` per scrape target, `ALERTS` per pending or firing alert.
BUILTIN = {"up", "ALERTS"}
_NAME = re.compile(r"\b(streamguard_\w+|up|ALERTS)\b(?=\s*[{\[)>=<!,]|\s*$)")


def exported_names() -> set[str]:
    """Every series name a worker's /metrics can show, also for labelled metrics with no sample yet."""
    return {f"{f.name}{suffix}" for f in Metrics().registry.collect() for suffix in _SUFFIXES[f.type]} | BUILTIN


def queried_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    return set(_NAME.findall(expr))
