"""`streamguard demo`: the whole pipeline on this machine for a minute, watched live."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import typer

from ..kafka import client_conf
from ..settings import get_settings
from ._app import app, console

__all__: list[str] = []

_ROOT = Path(__file__).resolve().parents[2]
_KAFKA_SH = _ROOT / "docker" / "local" / "kafka.sh"


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def _metrics(port: int) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def _sum(m: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in m.items() if n == name and all((k, x) in lab for k, x in labels.items()))


def _by(m: dict, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, lab), v in m.items():
        if n == name:
            key = dict(lab).get(label, "?")
            out[key] = out.get(key, 0.0) + v
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def _quantile(m: dict, name: str, q: float) -> float | None:
    """A quantile from a Prometheus histogram's cumulative buckets (upper bound of the bucket)."""
    buckets = sorted((float(dict(lab)["le"]), v) for (n, lab), v in m.items() if n == f"{name}_bucket")
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return None


@app.command()
def demo(
    duration: float = typer.Option(60.0, help="Seconds of simulated traffic."),
    rate: float = typer.Option(300.0, help="Average events per second the simulation sends."),
    seed: int = typer.Option(7, help="Scenario generator seed."),
    port: int = typer.Option(None, help="Worker metrics port (default: STREAMGUARD_METRICS_PORT)."),
) -> None:
    """Run the pipeline locally: Kafka, one worker, ~60 s of traffic with attacks, a live view, a summary.

    Starts the embedded Kafka broker if none answers (and stops it at the end), starts a
    worker on the active model, simulates mixed traffic with brute force, spraying,
    stuffing, port scans, DDoS and web attacks, shows threats and actions as they happen,
    and ends with a summary. Each run uses fresh topics (prefix demoHHMMSS.). Ctrl-C stops
    everything it started.
    """
    from rich.live import Live

    from ..errors import InfraUnavailable, StreamsError
    from ..kafka import ping_kafka
    from ..model_store import artifact_cache, sign_version
    from ._common import registry
    from ._view import View, decode_record

    s = get_settings()
    port = port or s.metrics_port
    started_kafka = False
    procs: list[subprocess.Popen] = []
    try:
        try:
            ping_kafka(s.kafka_bootstrap, timeout_s=3)
        except InfraUnavailable:
            if not _KAFKA_SH.exists():
                console.print(f"[red]error[/] no Kafka at {s.kafka_bootstrap} and no local broker script to start one")
                raise typer.Exit(1) from None
            console.print("starting the embedded Kafka broker ...")
            subprocess.run(["bash", str(_KAFKA_SH), "up"], check=True)
            started_kafka = True
        active = registry().active(s.model_name)
        if active is None:
            console.print(f"[red]error[/] no active model {s.model_name!r}: run `make models` first")
            raise typer.Exit(1)

        prefix = f"demo{time.strftime('%H%M%S')}."
        env = {**os.environ, "STREAMGUARD_TOPIC_PREFIX": prefix, "STREAMGUARD_APP_ID": f"demo-{uuid.uuid4().hex[:8]}",
               "STREAMGUARD_METRICS_PORT": str(port),
               # A one-minute demo: incidents update every 5 s instead of 30 s.
               "STREAMGUARD_INCIDENT_UPDATE_S": os.environ.get("STREAMGUARD_INCIDENT_UPDATE_S", "5")}
        try:
            s.check_signing_secret()
        except StreamsError:
            # The demo's own deployment gets its own secret; a real one must set STREAMGUARD_SIGNING_SECRET.
            env["STREAMGUARD_SIGNING_SECRET"] = secrets.token_hex(32)
            # Workers load only records signed with their secret: the demo vouches for the model it
            # trained itself (`make models`), whose artifact is checked against its sha256 first.
            sign_version(registry(), s.model_name, active.version, artifact_cache(s),
                         secret=env["STREAMGUARD_SIGNING_SECRET"])
            console.print(f"signing secret: a random one for this demo (STREAMGUARD_SIGNING_SECRET is not set); "
                          f"{s.model_name} {active.version} signed with it")
        exe = str(Path(sys.executable).parent / "streamguard")
        log_dir = Path(tempfile.mkdtemp(prefix="streamguard-demo-"))
        worker_log = log_dir / "worker.log"
        procs.append(subprocess.Popen([exe, "worker", "--loglevel=warn"], env=env, stdout=worker_log.open("w"),
                                      stderr=subprocess.STDOUT))
        console.print(f"worker starting (log: {worker_log}) ...")
        deadline = time.monotonic() + 90
        while _get(f"http://127.0.0.1:{port}/health")[0] != 200:
            if procs[0].poll() is not None or time.monotonic() > deadline:
                console.print(f"[red]error[/] the worker did not start; see {worker_log}")
                console.print(worker_log.read_text()[-2000:])
                raise typer.Exit(1)
            time.sleep(0.5)
        truth = log_dir / "truth.json"
        sim = subprocess.Popen([exe, "simulate", "--duration", str(duration), "--rate", str(rate), "--seed", str(seed),
                                "--truth", str(truth)], env=env, stdout=subprocess.DEVNULL,
                               stderr=(log_dir / "simulate.log").open("w"))
        procs.append(sim)
        console.print(f"simulating {duration:.0f} s of traffic at ~{rate:.0f} events/s; topics {prefix}*; "
                      f"metrics http://127.0.0.1:{port}/metrics\n")

        from confluent_kafka import Consumer

        from ..topics import topic_names
        from ..wire import DeadLetter, HealingAction, Incident

        names = topic_names(s.model_copy(update={"topic_prefix": prefix}))
        # One row per attack (an incident), not per threat event: a scan is thousands of those.
        wanted = {names.incidents: ("incident", Incident), names.actions: ("action", HealingAction),
                  names.deadletter: ("deadletter", DeadLetter)}
        consumer = Consumer({**client_conf(s.kafka_bootstrap), "group.id": f"demo-view-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})
        consumer.subscribe(list(wanted))
        view = View(kinds=["incident", "action", "deadletter"], topics=list(wanted))
        first_scored_at = None
        quiet_since = None
        with Live(view.render(), console=console, auto_refresh=False, vertical_overflow="visible") as live:
            last_draw = 0.0
            while True:
                for msg in consumer.consume(500, 0.25):
                    if msg.error() is None and msg.topic() in wanted:
                        kind, model = wanted[msg.topic()]
                        view.add(decode_record(msg, kind, model))
                if time.monotonic() - last_draw > 0.5:
                    live.update(view.render(), refresh=True)
                    last_draw = time.monotonic()
                    m = _metrics(port)
                    if first_scored_at is None and _sum(m, "streamguard_events_total"):
                        first_scored_at = time.monotonic()
                    if sim.poll() is not None:
                        # The simulation is over: stop once the worker has caught up and gone quiet.
                        done = _sum(m, "streamguard_events_total") >= _sum(m, "streamguard_events_in_total") > 0
                        quiet_since = quiet_since or (time.monotonic() if done else None)
                        if done and time.monotonic() - quiet_since > 3:
                            break
            live.update(view.render(final=True), refresh=True)
        consumer.close()
        m = _metrics(port)
        elapsed = time.monotonic() - (first_scored_at or time.monotonic())
        scored = _sum(m, "streamguard_events_total", outcome="scored")
        console.rule("summary")
        console.print(f"events in {int(_sum(m, 'streamguard_events_in_total')):,}: scored {int(scored):,}, "
                      f"dead-lettered {int(_sum(m, 'streamguard_events_total', outcome='deadlettered')):,}")
        threats_by_label = _by(m, "streamguard_threats_total", "label")
        console.print("threats by label: " + ", ".join(f"{k} {int(v):,}" for k, v in threats_by_label.items()))
        threats_by_severity = _by(m, "streamguard_threats_total", "severity")
        console.print("threats by severity: " + ", ".join(f"{k} {int(v):,}" for k, v in threats_by_severity.items()))
        console.print(f"incident records: {int(_sum(m, 'streamguard_incident_records_total')):,} (one incident per "
                      "attacking target and label, updated while it goes on)")
        actions_by_kind = _by(m, "streamguard_actions_total", "action")
        console.print("actions: " + (", ".join(f"{k} {int(v):,}" for k, v in actions_by_kind.items()) or "none"))
        dead_letters_by_reason = _by(m, "streamguard_deadletters_total", "reason")
        console.print("dead letters: " + (", ".join(f"{k} {int(v):,}" for k, v in dead_letters_by_reason.items())
                                          or "none"))
        lag_metric = "streamguard_processing_lag_seconds"
        p50, p99 = _quantile(m, lag_metric, 0.5), _quantile(m, lag_metric, 0.99)
        console.print(f"throughput: {scored / max(elapsed, 1e-9):,.0f} events/s scored while traffic ran "
                      f"({elapsed:.0f} s); ingest-to-output lag p50 <= {p50} s, p99 <= {p99} s")
        console.print(f"metrics were at http://127.0.0.1:{port}/metrics (health: /health); logs in {log_dir}; "
                      f"topics {prefix}* (`STREAMGUARD_TOPIC_PREFIX={prefix} streamguard tail --from-beginning`)")
        console.print(f"next: enforce the blocks on a host (`STREAMGUARD_TOPIC_PREFIX={prefix} streamguard enforce "
                      "--print`); with MongoDB set (STREAMGUARD_MONGO_URI) `streamguard incidents`, `threats` "
                      "and `blocks`; alert rules and the Grafana dashboard come with docker/compose.yaml "
                      "(docs/operations.md#alerts)")
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping what the demo started")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if started_kafka:
            subprocess.run(["bash", str(_KAFKA_SH), "down"], check=False)
