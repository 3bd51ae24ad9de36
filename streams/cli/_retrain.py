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
    live: bool = typer.Option(True, "--live/--no-live", help="Also train on the labelled live sample of the last "
                                                             "STREAMGUARD_LIVE_WINDOW_HOURS (features.sample; "
                                                             "labels from blocks, unblocks and `streamguard label`)."),
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
                             max_regression=max_regression, require_approval=require_approval, live=live)
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


@app.command("label")
def label(
    verdict: str = typer.Argument(..., help="benign, or an attack label: brute_force, password_spraying, "
                                            "credential_stuffing, port_scan, ddos, sql_injection, xss, "
                                            "path_traversal, web_scan."),
    source: str = typer.Option(None, "--source", "-s", help="Label every sampled row of this source address."),
    event: str = typer.Option(None, "--event", "-e", help="Label the row of this event (its event_id, as in "
                                                          "`streamguard threats`)."),
    wait: float = typer.Option(5.0, "--wait", "-w", help="Seconds to wait for the retrain worker's reply (0: do "
                                                         "not wait)."),
) -> None:
    """Give an analyst's verdict on a source or an event, for retraining on live traffic.

    The next retrain run trains on the rows workers sampled from that source (or that event)
    with this label; an analyst's label wins over what blocks and unblocks imply. Signed and
    sent on ops.control like every operator command (so it is audited); a running retrain
    worker acknowledges it. Labels stay in effect for STREAMGUARD_LIVE_WINDOW_HOURS of rows.
    """
    from features.simulation import SCENARIO_LABELS

    from ..control import Command
    from ._common import fail
    from ._control import send_signed

    if verdict not in SCENARIO_LABELS:
        raise fail(f"unknown label {verdict!r}: use one of {', '.join(SCENARIO_LABELS)}")
    if (source is None) == (event is None):
        raise fail("give exactly one of --source ADDRESS and --event EVENT_ID")
    try:
        command = Command(op="label", label=verdict, target=source, event_id=event)
    except ValueError:
        raise fail(f"not an IP address: {source!r}") from None
    # The retrain worker is the one reader that answers: expect one reply, not one per worker.
    raise typer.Exit(send_signed(command, wait, expect=1, unanswered=(
        "no retrain worker is running; the label is on ops.control, and the next retrain run reads it from there")))
