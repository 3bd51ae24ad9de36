"""From events to a feature matrix, in event-time order, with the same code the stream uses."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .events import LABEL_BENIGN, Event
from .extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, WindowStore
from .windows import WindowConfig

__all__ = ["Dataset", "build_dataset", "time_order"]


@dataclass(slots=True)
class Dataset:
    """Rows of features (`FEATURE_NAMES` order), their labels and the events they came from.

    `events` holds one event per row, or none at all for rows that came without their events
    (the feature rows workers sample from live traffic).
    """

    x: np.ndarray
    y: np.ndarray  # str labels; "benign" where the input had none
    events: list[Event]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        idx = np.asarray(idx, dtype=np.intp)
        return Dataset(self.x[idx], self.y[idx], [self.events[i] for i in idx] if self.events else [])

    @staticmethod
    def concat(parts: Iterable[Dataset]) -> Dataset:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Dataset(np.zeros((0, len(FEATURE_NAMES))), np.array([], dtype=object), [])
        return Dataset(
            np.vstack([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            # One per row or none: rows without events make the whole set one without.
            [e for p in parts for e in p.events] if all(p.events for p in parts) else [],
        )

    def fingerprint(self) -> str:
        """sha256 over the feature schema, the matrix and the labels: names the training data."""
        h = hashlib.sha256(FEATURE_SCHEMA_VERSION.encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update("\n".join(map(str, self.y)).encode())
        return h.hexdigest()


def time_order(events: Sequence[Event]) -> list[int]:
    """Indices that sort events by event time, ties kept in input order."""
    return sorted(range(len(events)), key=lambda i: events[i].ts)


def build_dataset(events: Sequence[Event], cfg: WindowConfig | None = None) -> Dataset:
    """Observe events in event-time order through fresh windows; rows come back in that order."""
    order = time_order(events)
    ordered = [events[i] for i in order]
    store = WindowStore(cfg)
    x = np.asarray(store.observe_all(ordered), dtype=np.float64).reshape(len(ordered), len(FEATURE_NAMES))
    y = np.array([e.label or LABEL_BENIGN for e in ordered], dtype=object)
    return Dataset(x, y, ordered)
