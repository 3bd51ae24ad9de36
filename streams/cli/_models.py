"""Model commands: train, score, models list/show/sign/promote/rollback/delete/prune."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape

from ..model_store import describe_store, register_trained
from ..settings import get_settings
from ._app import app, console
from ._common import check_loadable, fail, ints, load_active, registry

__all__: list[str] = []

models_app = typer.Typer(help="Inspect the model registry.", no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(models_app, name="models")


class Split(str, Enum):
    time = "time"
    file = "file"


class FeatureSet(str, Enum):
    all = "all"
    event = "event"


def _progress(started: float):
    def report(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {message}")

    return report


@app.command()
def train(
    generator: bool = typer.Option(None, "--generator/--no-generator",
                                   help="Train on the scenario generator (default: on unless files are given)."),
    seeds: str = typer.Option("0,1,2,3", help="Generator seeds to train on, comma-separated."),
    eval_seeds: str = typer.Option("100,101", help="Held-out generator seeds to evaluate on, comma-separated."),
    duration: float = typer.Option(900.0, help="Seconds of generated traffic per seed."),
    flows: list[Path] = typer.Option([], "--flows", exists=True, dir_okay=False,
                                     help="CICFlowMeter CSV file(s), either header variant. Repeatable."),
    logs: list[Path] = typer.Option([], "--logs", exists=True, dir_okay=False,
                                    help="Log file(s): syslog/sshd, access log or JSON lines. Repeatable."),
    split: Split = typer.Option(Split.time, help="For files: 'time' = last part of each file (event-time order) "
                                                  "is held out; 'file' = the --eval-file files are held out."),
    eval_file: list[Path] = typer.Option([], "--eval-file", help="With --split file: files used only for evaluation."),
    test_fraction: float = typer.Option(0.3, min=0.05, max=0.9, help="With --split time: share of each file held out."),
    features: FeatureSet = typer.Option(FeatureSet.all, help="'all' features, or 'event' (no window features: for "
                                                              "captures without IPs/timestamps on every row)."),
    detector: str = typer.Option("knn", help="Anomaly detector: 'knn' (distance to benign rows) or 'iforest'."),
    anomaly_threshold: float = typer.Option(0.99, min=0.5, max=0.9999,
                                            help="Calibrated anomaly score at which an event counts as anomalous."),
    name: str = typer.Option("streamguard", help="Model name in the registry."),
    activate: bool = typer.Option(None, "--activate/--no-activate",
                                  help="Make the new version active (default: only if the model has no active "
                                       "version)."),
    publish: bool = typer.Option(False, "--publish",
                                 help="Activate the new version and announce it (signed, with its sha256) on "
                                      "models.retrain: running workers verify it and swap it in."),
    wait: float = typer.Option(5.0, "--wait", "-w", help="With --publish: seconds to collect the workers' replies."),
) -> None:
    """Train an anomaly model and an attack classifier, check and evaluate them, register the bundle.

    Splits are never random over one capture: generator data is evaluated on another seed,
    files by time (the last part of each file) or by file. The evaluation report (JSON,
    markdown, confusion matrix and ROC/PR plots) is written beside the bundle.
    """
    from scoring.train import Dataset, TrainingData, TrainParams, file_data, generator_data, run_training

    started = time.monotonic()
    progress = _progress(started)
    use_generator = generator if generator is not None else not (flows or logs)
    parts: list[TrainingData] = []
    if use_generator:
        parts.append(generator_data(ints(seeds, "--seeds"), duration, ints(eval_seeds, "--eval-seeds"),
                                    progress=progress))
    if flows or logs:
        parts.append(file_data(flows, logs, split=split.value, test_fraction=test_fraction,
                               eval_files=eval_file, progress=progress))
    if not parts:
        console.print("[red]error[/] nothing to train on: use --generator and/or --flows/--logs")
        raise typer.Exit(2)
    data = TrainingData(Dataset.concat(p.train for p in parts), Dataset.concat(p.test for p in parts),
                        {"parts": [p.description for p in parts]}, [s for p in parts for s in p.test_sources])
    # The registry keeps its own copies of the artifact and report: the working folder goes.
    with tempfile.TemporaryDirectory(prefix="streamguard-train-") as out:
        params = TrainParams.defaults(anomaly_detector=detector, anomaly_threshold=anomaly_threshold)
        result = run_training(data, name=name, out_dir=Path(out), feature_set=features.value, progress=progress,
                              params=params)
        b = result.bundle
        reg = registry()
        info = register_trained(reg, result, name=name, feature_set=features.value, description=data.description,
                                secret=get_settings().signing_secret.get_secret_value())
    if publish or activate or (activate is None and reg.active(name) is None):
        info = reg.activate(name, b.version)
    m = result.metrics
    console.print(f"[bold]{name} {b.version}[/] ({info.status}) registered in {describe_store(get_settings())}")
    console.print(f"  classifier macro-F1 {m['classifier']['macro_f1']:.4f}; anomaly ROC AUC "
                  f"{m['anomaly'].get('roc_auc', float('nan')):.4f}, FPR {m['anomaly']['false_positive_rate']:.4f} and "
                  f"detection {m['anomaly']['detection_rate'] or 0:.4f} at {m['anomaly']['threshold']}")
    for source, fig in m.get("by_source", {}).get("sources", {}).items():
        rates = ", ".join(f"{lab} {c['threat_rate']:.3f}" for lab, c in fig["classes"].items())
        console.print(f"  {escape(source)}: share at risk >= {m['by_source']['threshold']}: {rates}")
    if hasattr(reg, "report_dir"):
        console.print(f"  report: {reg.report_dir(name, b.version) / 'report.md'}")
    else:
        console.print("  report: stored with the version (GridFS)")
    console.print(f"  took {time.monotonic() - started:.1f} s")
    if publish:
        from ..control import Command
        from ._control import send_signed

        code = send_signed(Command(op="announce", version=b.version, sha256=info.sha256,
                                   feature_schema_version=info.feature_schema_version), wait, announce=True)
        raise typer.Exit(code)


@models_app.command("list")
def models_list(name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """List the registered versions of a model, newest last, with their status and headline metrics."""
    for info in registry().list(name):
        m = info.metrics
        typer.echo(f"{info.version}\t{info.status}\tmacro_f1={m.get('macro_f1', 0):.4f}\t"
                   f"anomaly_auc={m.get('anomaly_roc_auc') or 0:.4f}\tsha256={info.sha256[:12]}")


@models_app.command("show")
def models_show(version: str = typer.Argument(None, help="Version (default: the active one)."),
                name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Show one version's metadata as JSON."""
    from dataclasses import asdict

    reg = registry()
    info = reg.get(name, version) if version else reg.active(name)
    if info is None:
        console.print(f"[red]error[/] model {name!r} has no active version; run `streamguard train`")
        raise typer.Exit(1)
    typer.echo(json.dumps(asdict(info), indent=2))


_RESTART_NOTE = ("Running workers serve it from their next restart; `streamguard control promote` (or "
                 "`rollback`) also swaps it in on running workers now.")


@models_app.command("promote")
def models_promote(version: str = typer.Argument(..., help="Version to make active."),
                   name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Make a registered version active; the one it replaces becomes the rollback target."""
    reg = registry()
    check_loadable(reg, version, name)  # workers would refuse it at their next start
    info = reg.activate(name, version)
    console.print(f"{name} {info.version} is active. {_RESTART_NOTE}")


@models_app.command("rollback")
def models_rollback(to: str = typer.Option(None, "--to", help="Version to return to (default: the previous one)."),
                    name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Return to the previous version (or a named one); the version rolled back from becomes previous."""
    info = registry().rollback(name, to)
    console.print(f"{name} {info.version} is active. {_RESTART_NOTE}")


@models_app.command("delete")
def models_delete(version: str = typer.Argument(..., help="Version to delete."),
                  name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Delete a version and its report; the active and previous versions are refused."""
    registry().delete(name, version)
    console.print(f"deleted {name} {version}")


@models_app.command("prune")
def models_prune(keep: int = typer.Option(5, min=0, help="How many of the newest versions to keep."),
                 name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Apply retention: delete all but the newest KEEP versions, never the active or previous one."""
    gone = registry().apply_retention(name, keep)
    console.print(f"deleted {len(gone)} version(s)" + (": " + ", ".join(gone) if gone else ""))


@models_app.command("sign")
def models_sign(version: str = typer.Argument(None, help="Version (default: the active one)."),
                every: bool = typer.Option(False, "--all", help="Every registered version of the model."),
                name: str = typer.Option("streamguard", help="Model name.")) -> None:
    """Sign version records with STREAMGUARD_SIGNING_SECRET, each after checking its artifact's sha256.

    Workers load a version only when its record (name, version, sha256, feature schema) is
    signed with their secret. `streamguard train` and the retrain worker sign what they
    register; sign a version registered before records were signed, or after the secret
    changed, once you trust its artifact: signing vouches for it.
    """
    from registry import RegistryError

    from ..errors import StreamsError
    from ..model_store import artifact_cache, sign_version

    s = get_settings()
    try:
        s.check_signing_secret()
    except StreamsError as exc:
        raise fail(str(exc), 2) from None
    secret = s.signing_secret.get_secret_value()
    reg = registry()
    infos = reg.list(name) if every else [reg.get(name, version) if version else reg.active(name)]
    if not infos or infos[0] is None:
        raise fail(f"model {name!r} has no {'versions' if every else 'active version'}")
    failed = 0
    for info in infos:
        try:
            sign_version(reg, name, info.version, artifact_cache(s), secret=secret)
        except RegistryError as exc:
            failed += 1
            console.print(f"[red]not signed[/] {info.version}: {exc}")
            continue
        console.print(f"signed {name} {info.version} (sha256 {info.sha256[:12]}…)")
    if failed:
        raise typer.Exit(1)


def _read_input(path: str, now: datetime):
    """(origin, Event | ParseError) for each input row, in input order."""
    from features.parsing import is_cicflowmeter_header, parse_line, read_cicflowmeter_csv

    if path == "-":
        data = sys.stdin.buffer.read()
        label = "stdin"
    else:
        data = Path(path).read_bytes()
        label = Path(path).name
    if is_cicflowmeter_header(data.split(b"\n", 1)[0]):
        with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
            tmp.write(data)
            tmp.flush()
            for i, item in enumerate(read_cicflowmeter_csv(Path(tmp.name), now=now, bounds=None)):
                yield f"{label}:{i + 2}", item
        return
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            yield f"{label}:{i + 1}", parse_line(line, now=now, bounds=None)
        except Exception as exc:  # noqa: BLE001 - parse_line raises only ParseError; keep one bad line from ending the run
            yield f"{label}:{i + 1}", exc


@app.command()
def score(
    file: str = typer.Argument(..., help="CICFlowMeter CSV, log lines or JSON lines; '-' reads stdin."),
    out: Path = typer.Option(None, "--out", "-o", help="Write results here instead of stdout."),
    all_events: bool = typer.Option(False, "--all", help="Write every scored event, not only threats."),
    threshold: int = typer.Option(70, min=0, max=100, help="Risk at or above which an event is a threat."),
    batch: int = typer.Option(1000, min=1, help="Events per scoring batch."),
    name: str = typer.Option("streamguard", help="Model name in the registry."),
    version: str = typer.Option(None, help="Model version (default: the active one)."),
) -> None:
    """Score a file offline with the active bundle, through the stream's code path.

    Events are put in event-time order and pass through the same rolling windows as in
    the worker; each result is one JSON line in the `threats.enriched` wire format.
    Unparseable lines are reported on stderr with their reason code.
    """
    import numpy as np

    from features.errors import ParseError
    from features.extract import WindowStore
    from scoring.batch import score_batch

    from ..wire import event_id_for, threat_from

    started = time.monotonic()
    bundle = load_active(name, version)
    now = datetime.now(UTC)
    items = list(_read_input(file, now))
    good = [(origin, ev) for origin, ev in items if not isinstance(ev, Exception)]
    bad = [(origin, err) for origin, err in items if isinstance(err, Exception)]
    for origin, err in bad:
        reason = err.reason.value if isinstance(err, ParseError) else "internal"
        console.print_json(json.dumps({"origin": origin, "reason": reason, "error": str(err)}))
    good.sort(key=lambda pair: pair[1].ts)
    store = WindowStore()
    sink = open(out, "w") if out else sys.stdout
    written = threats = 0
    try:
        for lo in range(0, len(good), batch):
            chunk = good[lo : lo + batch]
            events = [ev for _, ev in chunk]
            x = np.asarray([store.observe(ev) for ev in events], dtype=np.float64)
            results = score_batch(bundle, events, x, explain_min_risk=0 if all_events else threshold)
            detected = int(time.time() * 1000)
            for (origin, ev), res in zip(chunk, results):
                is_threat = res.risk >= threshold
                threats += is_threat
                if is_threat or all_events:
                    rec = threat_from(ev, res, event_id=event_id_for(origin), detected_at_ms=detected,
                                      feature_schema_version=bundle.feature_schema_version)
                    sink.write(rec.model_dump_json() + "\n")
                    written += 1
    finally:
        if out:
            sink.close()
    console.print(f"scored {len(good):,} events with {bundle.name} {bundle.version}: {threats:,} threats "
                  f"(risk >= {threshold}), {len(bad):,} unparseable; {written:,} lines written "
                  f"in {time.monotonic() - started:.1f} s")
