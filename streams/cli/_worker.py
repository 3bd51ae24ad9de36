"""`streamguard worker`: run one Faust worker of the pipeline."""

from __future__ import annotations

import gc
import logging
import sys

import typer

from ..settings import get_settings
from ._app import app, console

__all__: list[str] = []

# Collections of the youngest generation every 50,000 allocations instead of CPython's 700: a
# worker allocates a dict or list per hop and field, and at 700 most of them were still alive
# (in a batch) when collected, so they were promoted and swept again by the older generations'
# passes. One worker read a 100,000-event backlog 16 % faster (docs/performance.md).
GC_THRESHOLDS = (50_000, 20, 100)

_LEVELS = {"crit": logging.CRITICAL, "critical": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING,
           "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


@app.command()
def worker(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="crit, error, warn, info or debug."),
) -> None:
    """Run a pipeline worker: raw logs and flows in, threats, actions and dead letters out.

    Configured by STREAMGUARD_* variables (see `streamguard settings`). Start several with
    the same STREAMGUARD_APP_ID to share the work; each needs its own STREAMGUARD_METRICS_PORT
    on one machine. Serves /metrics and /health on that port. Stops cleanly on Ctrl-C/SIGTERM.
    """
    from ..app import PRODUCER_MAX_REQUEST, Pipeline
    from ..kafka import ensure_topics, ping_kafka, record_limit
    from ..model_store import describe_store
    from ..operator_state import TOPIC_CONFIG, load_operator_state, state_topic, topic_ends
    from ..topics import topic_names
    from ._common import load_active, registry

    s = get_settings()
    s.check_signing_secret()
    if s.policy_file is not None:
        from ..policy import read_policy_file

        read_policy_file(s.policy_file)  # a broken policy file stops the worker here, naming the problem
    logging.basicConfig(level=s.log_level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    # Faust sets the root logger to DEBUG when its spinner is on (--loglevel=warn), so each
    # message sent would build a debug record in aiokafka only for the handler to drop it:
    # 6 % of a worker's time, measured with py-spy. Libraries log at the level asked for.
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(_LEVELS.get(loglevel.lower(), logging.INFO))
    ping_kafka(s.kafka_bootstrap, timeout_s=10)
    names = topic_names(s)
    created = ensure_topics(s.kafka_bootstrap, names.all(), s.topic_partitions, per_topic=names.configs())
    if created:
        console.print(f"created topics: {', '.join(created)}")
    store = registry()
    bundle = load_active(s.model_name, None, store)
    from features.store import compile_kernels
    from scoring.threads import pin_threads

    compile_kernels()  # numba's cache (filled by `make install`) makes this ~1 s; the first batch must not wait
    pin_threads(s.blas_threads)  # after the model is loaded: its libraries' pools exist by now
    console.print(f"streamguard worker {s.app_id}: model {bundle.name} {bundle.version} from "
                  f"{describe_store(s)}, Kafka {s.kafka_bootstrap}, metrics on :{s.metrics_port}")
    limit = s.max_record_bytes or record_limit(s.kafka_bootstrap, topic_names(s).all(), PRODUCER_MAX_REQUEST)
    pipeline = Pipeline(s, bundle, store=store, max_record_bytes=limit)
    for name, partitions, config in pipeline.internal_topics():
        ensure_topics(s.kafka_bootstrap, [name], partitions, config=config)
    # The operators' switches (and the challenger) before any agent starts: see streams.operator_state.
    states = state_topic(s)
    ensure_topics(s.kafka_bootstrap, [states], 1, config=TOPIC_CONFIG)
    recorded, _ = load_operator_state(s.kafka_bootstrap, states, s.signing_secret.get_secret_value(), s.app_id)
    ends = topic_ends(s.kafka_bootstrap, topic_names(s).control)
    console.print(pipeline.operations.restore(recorded, ends))
    # What is built by now (modules, the model, the app) lives as long as the worker: out of the
    # cyclic collector's reach, whose full passes over it took ~100 ms every 2-3 s at 1,000 events/s.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.argv = ["streamguard", "worker", f"--loglevel={loglevel}"]
    if s.metrics_port:
        sys.argv.append(f"--web-port={s.metrics_port}")
    pipeline.app.main()
