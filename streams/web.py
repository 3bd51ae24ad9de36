"""The worker's web pages: /metrics for Prometheus, /health for orchestrators, /debug/tasks for people."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .faust.internals import consumer_state
from .metrics import Metrics
from .serving import Serving

__all__ = ["health", "register_pages", "task_stacks"]


def task_stacks() -> str:
    """Where every asyncio task of the worker waits: what to look at when a stage stops moving."""
    lines = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()}")
        obj: Any = task.get_coro()
        # Follow the await chain down to the innermost waiting frame.
        for _ in range(40):
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
            if frame is None:
                if obj is not None:
                    lines.append(f"    awaiting {obj!r:.200}")
                break
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            obj = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
    return "\n".join(lines) + "\n"


def health(app: Any, serving: Serving, *, last_input_monotonic: float | None,
           started_monotonic: float) -> tuple[dict[str, Any], int]:
    """The /health body and status: 200 once the worker consumes, 503 before."""
    assigned = app.assignor.assigned_actives()
    idle = None if last_input_monotonic is None else round(time.monotonic() - last_input_monotonic, 3)
    consuming = bool(assigned) and app.consumer is not None
    bundle = serving.bundle
    body = {
        "status": "ok" if consuming else "starting",
        "consuming": consuming,
        "assigned_partitions": len(assigned),
        "seconds_since_last_input": idle,
        "uptime_s": round(time.monotonic() - started_monotonic, 1),
        "model": {"name": bundle.name, "version": bundle.version,
                  "feature_schema_version": bundle.feature_schema_version},
        "challenger": serving.challenger_state(),
        "dry_run": serving.policy.dry_run,
        "paused": serving.policy.paused,
        "threat_threshold": serving.threshold,
        "policy_version": serving.policy.version,
        "promotion_watch": serving.status()["promotion_watch"],
    }
    return body, 200 if consuming else 503


def register_pages(app: Any, metrics: Metrics, health_of: Callable[[], tuple[dict[str, Any], int]], *,
                   debug: bool = False) -> None:
    """Add /metrics and /health to a Faust app's web server, and /debug/tasks if `debug`."""

    # Faust makes a page's function the `get` of a View class, so it must take (view, request).
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    async def health_page(web: Any, request: Any) -> Any:
        body, status = health_of()
        return web.json(body, status=status)

    async def tasks_page(web: Any, request: Any) -> Any:
        text = consumer_state(app) + "\n" + task_stacks()
        return web.bytes(text.encode(), content_type="text/plain")

    app.page("/metrics")(metrics_page)
    app.page("/health")(health_page)
    if debug:  # task stacks and consumer offsets are for whoever diagnoses the worker, not for everyone
        app.page("/debug/tasks")(tasks_page)
