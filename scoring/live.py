"""Labelled rows of live traffic for retraining: sampled rows, labelled by blocks, operators and analysts.

Workers sample feature rows as they score (every flagged row, one unflagged row in N); the
retrain worker feeds them here with what happened since: the blocks the worker enforced, the
addresses an operator unblocked or allowlisted, and the labels an analyst gave. A row's label:

1. an analyst's label for its event, else for its source address;
2. `benign` if an operator unblocked or allowlisted its source (the block was a false positive);
3. its served label if it was flagged (a non-benign verdict at or above the threat threshold)
   and its source was blocked for real (not a dry run) and never unblocked by an operator;
4. `benign` if it was not flagged and its source was never blocked, flagged or labelled;
5. otherwise none: a flagged row nobody acted on is not evidence either way.

Bounded by construction: at most `per_label` rows per label are kept (a seeded reservoir, so
every row of a long run has the same chance), and feedback about at most `max_sources` addresses.
"""

from __future__ import annotations

import ipaddress
import random
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from features.events import LABEL_BENIGN
from features.extract import FEATURE_NAMES, FEATURE_SCHEMA_VERSION

__all__ = ["LiveRow", "LiveRows", "canonical_source"]


@dataclass(frozen=True, slots=True)
class LiveRow:
    """One sampled row: its event, source, the verdict served on it, and its features (`FEATURE_NAMES` order)."""

    event_id: str
    ts_ms: int
    source: str
    label: str
    risk: int
    flagged: bool
    x: np.ndarray


def canonical_source(value: str) -> str:
    """An address in one spelling (`::ffff:10.0.0.1` is 10.0.0.1); anything else unchanged."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return value
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


class LiveRows:
    """The sample, the feedback, and the labelled training rows they make."""

    def __init__(self, *, per_label: int = 2000, max_sources: int = 100_000, seed: int = 0) -> None:
        self.per_label = per_label
        self.max_sources = max_sources
        self._rng = random.Random(seed)
        self._rows: list[LiveRow] = []  # reservoir over every row offered (the labels are known only later)
        self._offered = 0
        self.refused: dict[str, int] = {}  # reason -> rows not taken (other schema, wrong width, not finite)
        self._blocked: OrderedDict[str, None] = OrderedDict()
        self._undone: OrderedDict[str, None] = OrderedDict()
        self._by_source: OrderedDict[str, str] = OrderedDict()
        self._by_event: OrderedDict[str, str] = OrderedDict()
        self._flagged: OrderedDict[str, None] = OrderedDict()  # every flagged source offered, kept or not
        self._undone_nets: OrderedDict[ipaddress.IPv4Network | ipaddress.IPv6Network, None] = OrderedDict()

    @property
    def capacity(self) -> int:
        """Rows kept before labelling: enough for `per_label` of each of a dozen labels."""
        return self.per_label * 12

    def offer(self, row: LiveRow, feature_schema_version: str) -> bool:
        """Keep a row if it fits the current features (reservoir sampling past `capacity`); False if refused."""
        why = None
        if feature_schema_version != FEATURE_SCHEMA_VERSION:
            why = "feature_schema"
        elif row.x.shape != (len(FEATURE_NAMES),):
            why = "width"
        elif not np.isfinite(row.x).all():
            why = "not_finite"
        if why is not None:
            self.refused[why] = self.refused.get(why, 0) + 1
            return False
        row = LiveRow(row.event_id, row.ts_ms, canonical_source(row.source), row.label, row.risk, row.flagged, row.x)
        self._offered += 1
        if row.flagged:
            self._remember(self._flagged, row.source)
        if len(self._rows) < self.capacity:
            self._rows.append(row)
        else:
            j = self._rng.randrange(self._offered)
            if j < self.capacity:
                self._rows[j] = row
        return True

    def _remember(self, table: OrderedDict, key: str, value: object = None) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_sources:
            table.popitem(last=False)

    def blocked(self, source: str) -> None:
        """A real (not dry-run) block of this address was issued."""
        self._remember(self._blocked, canonical_source(source))

    def undone(self, source: str) -> None:
        """An operator unblocked or allowlisted this address: its block was a false positive."""
        self._remember(self._undone, canonical_source(source))

    def undone_network(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
        """An operator allowlisted this network: blocks of its addresses were false positives."""
        self._remember(self._undone_nets, network)

    def _is_undone(self, source: str) -> bool:
        if source in self._undone:
            return True
        if not self._undone_nets:
            return False
        try:
            addr = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(addr in net for net in self._undone_nets)

    def label_source(self, source: str, label: str) -> None:
        """An analyst's label for every row of this address."""
        self._remember(self._by_source, canonical_source(source), label)

    def label_event(self, event_id: str, label: str) -> None:
        """An analyst's label for one event's row."""
        self._remember(self._by_event, event_id, label)

    def label_of(self, row: LiveRow) -> str | None:
        """The row's training label by the rules in the module docstring; None if there is none."""
        if row.event_id in self._by_event:
            return self._by_event[row.event_id]
        if row.source in self._by_source:
            return self._by_source[row.source]
        if self._is_undone(row.source):
            return LABEL_BENIGN
        if row.flagged:
            return row.label if row.source in self._blocked and row.label != LABEL_BENIGN else None
        # An address that was ever flagged or blocked is not vouched for by its quiet moments.
        return LABEL_BENIGN if row.source not in self._blocked and row.source not in self._flagged else None

    def dataset(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """The labelled rows in event-time order, at most `per_label` of each label, and the count per label."""
        picked: dict[str, list[LiveRow]] = {}
        for row in sorted(self._rows, key=lambda r: (r.ts_ms, r.event_id)):
            label = self.label_of(row)
            if label is not None:
                picked.setdefault(label, []).append(row)
        rows: list[tuple[LiveRow, str]] = []
        counts: dict[str, int] = {}
        for label in sorted(picked):
            group = picked[label]
            if len(group) > self.per_label:
                # An even spread over the run, not its first rows.
                keep = np.linspace(0, len(group) - 1, self.per_label).round().astype(int)
                group = [group[i] for i in keep]
            rows += [(r, label) for r in group]
            counts[label] = len(group)
        rows.sort(key=lambda p: (p[0].ts_ms, p[0].event_id))
        if not rows:
            return np.zeros((0, len(FEATURE_NAMES))), np.array([], dtype=object), counts
        x = np.vstack([r.x for r, _ in rows])
        y = np.array([lab for _, lab in rows], dtype=object)
        return x, y, counts

    def __len__(self) -> int:
        return len(self._rows)
