"""The streaming shell: settings, topics, wire contracts, the Faust worker, metrics and the CLI.

The only package that imports Faust, Kafka clients or prometheus_client, and with `registry`
(its MongoDB store) the only one that imports pymongo. `features` and `scoring` stay pure.

    settings.py   the one place that reads the environment (STREAMGUARD_*)
    topics.py     topic names; wire.py public messages; internal.py messages between stages
    app.py        the worker's composition root: Faust app, topics, tables, stages wired in
    agents/       one module per stage (ingest, hop, score, heal, sink) over a shared context
    ordering/     event-time order across partitions and workers (align, hold, runtime)
    faust/        every patch of faust and every read of its internals (pinned versions only)
    serving.py    what is served: bundle, challenger, threshold, policy; operations.py changes it
    control.py    signed operator commands; retrain.py the retrain worker
    web.py        /metrics, /health, /debug/tasks; metrics.py the Prometheus metrics
    kafka.py, reader.py, mongo.py, model_store.py   Kafka admin, group-less readers, MongoDB, models
    cli/          the `streamguard` command line
"""

from .errors import InfraUnavailable, SettingsError, StreamsError
from .settings import Settings, get_settings
from .topics import TopicNames, topic_names

__all__ = [
    "InfraUnavailable",
    "Settings",
    "SettingsError",
    "StreamsError",
    "TopicNames",
    "get_settings",
    "topic_names",
]
