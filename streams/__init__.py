"""Composition root: settings, topics, Kafka/Faust agents, sinks, metrics and the CLI.

The only package that imports Faust, Kafka clients, pymongo or prometheus_client.
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
