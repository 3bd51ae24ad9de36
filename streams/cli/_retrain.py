"""`streamguard retrain-worker`: retrain on request, on drift and on an interval; gate; publish."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

from ..settings import get_settings
from ._app import app, console
from ._common import ints

__all__: list[str] = []


@app.command("retrain-worker")
def retrain_worker(
    generator: bool = typer.Option(True, "--generator/--no-generator", help="Train on fresh scenario-generator seeds."),
    seeds_per_run: int = typer.Option(2, "--seeds-per-run", min=1, help="Generator seeds per run (new ones each run)."),
    duration: float = typer.Option(600.0, "--duration", min=10, help="Seconds of generated traffic per seed."),
    eval_seeds: str = typer.Option("100,101", help="Held-out generator seeds both champion and challenger are "
                                                   "evaluated on, comma-separated."),
    flows: list[Path] = typer.Option([], "--flows", exists=True, dir_okay=False,
                                     help="CICFlowMeter CSV file(s) to train on as well (split by time). Repeatable."),
    logs: list[Path] = typer.Option([], "--logs", exists=True, dir_okay=False,
                                    help="Log file(s) to train on as well (split by time). Repeatable."),
    max_regression: float = typer.Option(0.005, "--max-regression", min=0.0, max=1.0,
                                         help="Promote only if macro-F1 and anomaly ROC AUC fall by at most this."),
    require_approval: bool = typer.Option(False, "--require-approval",
                                          help="Register a version that passes the gate without promoting it: an "
                                               "operator promotes it (`streamguard control promote V`)."),
    once: bool = typer.Option(False, "--once", help="Run one retrain now and exit (no Kafka consumer)."),
) -> None:
    """Retrain on signed `retrain` commands, drift requests and STREAMGUARD_AUTO_RETRAIN_HOURS.

    Each run trains a challenger, evaluates it and the active version (the champion) on
    the same held-out rows, and promotes it only if it is not worse (--max-regression).
    A promoted version is announced on models.retrain and every worker swaps it in; a
    kept-out one stays registered, inactive, with the gate's reason in its metadata
    (`streamguard models show VERSION`). Each run is answered on ops.status. Serves
    Prometheus metrics on STREAMGUARD_METRICS_PORT (0: off). Ctrl-C stops between runs.
    """
    from ..retrain import RetrainOptions, RetrainWorker

    s = get_settings()
    s.check_signing_secret()
    logging.basicConfig(level=s.log_level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    if not generator and not (flows or logs):
        console.print("[red]error[/] nothing to train on: use --generator and/or --flows/--logs")
        raise typer.Exit(2)
    options = RetrainOptions(generator=generator, seeds_per_run=seeds_per_run, duration_s=duration,
                             eval_seeds=tuple(ints(eval_seeds, "--eval-seeds")), flows=tuple(flows), logs=tuple(logs),
                             max_regression=max_regression, require_approval=require_approval)
    worker = RetrainWorker(s, options, progress=lambda m: console.print(f"[dim]retrain[/] {m}"))
    if once:
        out = worker.retrain("operator", "streamguard retrain-worker --once")
        raise typer.Exit(0 if out["outcome"] in ("promoted", "kept", "awaiting_approval") else 1)
    from ..topics import topic_names
    from ._common import connect

    names = topic_names(s)
    # The audit trail is compacted: created here with that config if no worker has made it yet.
    connect(s, [names.status, names.audit])
    if s.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(s.metrics_port, registry=worker.metrics.registry)
        console.print(f"metrics on :{s.metrics_port}/metrics")
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run(should_stop=lambda: stop["now"])
    console.print("retrain worker stopped")
