"""Pure feature layer: parsing, the normalised event model, windows, feature extraction, traffic simulation.

Never imports Faust, Kafka clients, pymongo or prometheus_client.
"""

from .dataset import Dataset, build_dataset
from .entities import ROLES, entity_keys
from .errors import FeaturesError, ParseError, Reason
from .events import LABEL_BENIGN, AuthOutcome, Event, EventKind
from .extract import (
    EVENT_FEATURES,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    FEATURES,
    ROLE_FEATURES,
    WindowStore,
    assemble,
    event_features,
)
from .windows import WindowConfig

__all__ = [
    "AuthOutcome",
    "Dataset",
    "EVENT_FEATURES",
    "Event",
    "EventKind",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_VERSION",
    "FeaturesError",
    "LABEL_BENIGN",
    "ParseError",
    "ROLES",
    "ROLE_FEATURES",
    "Reason",
    "WindowConfig",
    "WindowStore",
    "assemble",
    "build_dataset",
    "entity_keys",
    "event_features",
]
