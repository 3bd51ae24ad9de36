"""A trained random forest as flat arrays, scored by one compiled loop: scikit-learn's answers, without scikit-learn."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .errors import ScoringError

__all__ = ["CompiledForest", "compile_forest", "compile_kernel"]


@numba.njit(cache=True, nogil=True)
def _leaf(x: np.ndarray, i: int, nodes: np.ndarray, nodes_f: np.ndarray, node: int) -> int:
    """One row's walk down one tree, branch-free: the comparison picks column 1 (left) or 2 (right)."""
    while nodes[node, 1] >= 0:
        node = nodes[node, 1 + np.int32(x[i, nodes[node, 0]] > nodes_f[node, 3])]
    return node


@numba.njit(cache=True, nogil=True)
def _forest_proba(x: np.ndarray, nodes: np.ndarray, nodes_f: np.ndarray, roots: np.ndarray,
                  leaf_value: np.ndarray) -> np.ndarray:
    n, n_trees, n_classes = x.shape[0], roots.shape[0], leaf_value.shape[1]
    out = np.zeros((n, n_classes))
    leaves = np.empty(n, dtype=np.int32)
    for t in range(n_trees):
        root = roots[t]
        # Tree by tree, as scikit-learn does, so one tree's nodes stay in cache; four rows walk
        # it side by side because a walk is a chain of dependent loads and mispredicted branches:
        # four independent chains overlap (measured 2x faster than one row at a time, and than
        # eight or sixteen rows in a loop the compiler does not unroll).
        i = 0
        while i + 4 <= n:
            a = b = c = d = root
            while nodes[a, 1] >= 0 or nodes[b, 1] >= 0 or nodes[c, 1] >= 0 or nodes[d, 1] >= 0:
                if nodes[a, 1] >= 0:
                    a = nodes[a, 1 + np.int32(x[i, nodes[a, 0]] > nodes_f[a, 3])]
                if nodes[b, 1] >= 0:
                    b = nodes[b, 1 + np.int32(x[i + 1, nodes[b, 0]] > nodes_f[b, 3])]
                if nodes[c, 1] >= 0:
                    c = nodes[c, 1 + np.int32(x[i + 2, nodes[c, 0]] > nodes_f[c, 3])]
                if nodes[d, 1] >= 0:
                    d = nodes[d, 1 + np.int32(x[i + 3, nodes[d, 0]] > nodes_f[d, 3])]
            leaves[i], leaves[i + 1], leaves[i + 2], leaves[i + 3] = nodes[a, 2], nodes[b, 2], nodes[c, 2], nodes[d, 2]
            i += 4
        while i < n:
            leaves[i] = nodes[_leaf(x, i, nodes, nodes_f, root), 2]
            i += 1
        # Summed tree by tree in tree order, as scikit-learn does: the same float sums, bit for bit.
        for i in range(n):
            for k in range(n_classes):
                out[i, k] += leaf_value[leaves[i], k]
    for i in range(n):
        for k in range(n_classes):
            out[i, k] /= n_trees
    return out


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold: `x <= t` then holds for exactly the same float32 x."""
    t32 = threshold.astype(np.float32)
    over = t32.astype(np.float64) > threshold
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


class CompiledForest:
    """The trees of a fitted `RandomForestClassifier`, concatenated; `predict_proba` equals the original's bit for bit.

    Why: scikit-learn walks each tree in its own call and imports SciPy; one compiled loop over
    flat arrays costs half of that per event and keeps scikit-learn out of a worker's start-up.
    `nodes` holds one row of four 32-bit words per node: split feature, left child, right child
    (absolute node numbers), threshold (float32 bits). A leaf has left == -1 and its right holds
    its row in `leaf_value` (class fractions, as scikit-learn stores them).
    """

    def __init__(self, classes: np.ndarray, n_features_in: int, nodes: np.ndarray, roots: np.ndarray,
                 leaf_value: np.ndarray, feature_importances: np.ndarray) -> None:
        self.classes_ = classes
        self.n_features_in_ = int(n_features_in)
        self.nodes = np.ascontiguousarray(nodes, dtype=np.int32)
        self.roots = np.ascontiguousarray(roots, dtype=np.int32)
        self.leaf_value = np.ascontiguousarray(leaf_value, dtype=np.float64)
        self.feature_importances_ = feature_importances
        self._check()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._check()  # a pickled forest is checked like a built one before any row walks it

    def _check(self) -> None:
        """Refuse arrays a walk could run off or loop in (a corrupt or hand-made forest), before any row is scored."""
        nodes, n_nodes = self.nodes, len(self.nodes)
        if nodes.ndim != 2 or nodes.shape[1] != 4 or n_nodes == 0:
            raise ScoringError("forest nodes must be a non-empty (n, 4) array")
        if len(self.roots) == 0 or self.roots.min() < 0 or self.roots.max() >= n_nodes:
            raise ScoringError("forest roots out of range")
        left, right = nodes[:, 1], nodes[:, 2]
        inner = left >= 0
        idx = np.flatnonzero(inner)
        # Children come after their parent (scikit-learn numbers nodes that way), so every walk ends.
        if ((left[inner] <= idx).any() or (right[inner] <= idx).any()
                or (left[inner] >= n_nodes).any() or (right[inner] >= n_nodes).any()):
            raise ScoringError("forest children out of range")
        if (nodes[inner, 0] < 0).any() or (nodes[inner, 0] >= self.n_features_in_).any():
            raise ScoringError("forest split features out of range")
        leaves = right[~inner]
        if (left[~inner] != -1).any() or leaves.min() < 0 or leaves.max() >= len(self.leaf_value):
            raise ScoringError("forest leaves out of range")
        if self.leaf_value.ndim != 2 or self.leaf_value.shape[1] != len(self.classes_):
            raise ScoringError("forest leaf values do not match its classes")

    @classmethod
    def from_sklearn(cls, forest: Any) -> CompiledForest:
        """Flatten a fitted scikit-learn `RandomForestClassifier` (single output)."""
        trees = getattr(forest, "estimators_", None)
        if not trees or getattr(forest, "n_outputs_", 1) != 1:
            raise ScoringError("only a fitted single-output random forest can be compiled")
        n_classes = len(forest.classes_)
        parts, roots, values = [], [], []
        base = n_leaves = 0
        for est in trees:
            tree = est.tree_
            left = tree.children_left.astype(np.int64)
            is_leaf = left < 0
            # scikit-learn (>= 1.4) stores a classifier leaf's class fractions and returns them as they are.
            values.append(tree.value[:, 0, :n_classes][is_leaf])
            part = np.empty((tree.node_count, 4), dtype=np.int64)
            part[:, 0] = np.where(is_leaf, 0, tree.feature)
            part[:, 1] = np.where(is_leaf, -1, left + base)
            part[:, 2] = np.where(is_leaf, n_leaves + np.cumsum(is_leaf) - 1, tree.children_right + base)
            part[:, 3] = 0
            parts.append((part, _float32_at_most(tree.threshold.astype(np.float64))))
            roots.append(base)
            base += tree.node_count
            n_leaves += int(is_leaf.sum())
        if base >= 2**31 or n_leaves >= 2**31:
            raise ScoringError(f"forest too large to compile: {base} nodes")
        nodes = np.concatenate([p for p, _ in parts]).astype(np.int32)
        nodes.view(np.float32)[:, 3] = np.concatenate([t for _, t in parts])
        return cls(np.asarray(forest.classes_), forest.n_features_in_, nodes, np.asarray(roots),
                   np.concatenate(values), np.asarray(forest.feature_importances_, dtype=np.float64))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities per row, columns in `classes_` order."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ScoringError(f"forest expects {self.n_features_in_} features per row, got shape {x.shape}")
        # scikit-learn's trees compare float32 features: the same rounding keeps every split identical.
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return _forest_proba(x32, self.nodes, self.nodes.view(np.float32), self.roots, self.leaf_value)

    @property
    def node_count(self) -> int:
        """Nodes over all trees."""
        return len(self.nodes)


def compile_forest(classifier: Any) -> Any:
    """The compiled form of a fitted scikit-learn random forest; any other classifier unchanged."""
    # By name, not isinstance: importing scikit-learn here would put it back on a worker's start-up.
    if type(classifier).__name__ == "RandomForestClassifier" and getattr(classifier, "estimators_", None):
        return CompiledForest.from_sklearn(classifier)
    return classifier


def compile_kernel() -> None:
    """Walk a two-leaf forest once, so numba compiles (or loads from its cache) the kernel now, not on a first batch."""
    nodes = np.array([[0, 1, 2, 0], [0, -1, 0, 0], [0, -1, 1, 0]], dtype=np.int32)
    forest = CompiledForest(np.array(["a", "b"]), 1, nodes, np.zeros(1, np.int32),
                            np.array([[1.0, 0.0], [0.0, 1.0]]), np.ones(1))
    forest.predict_proba(np.array([[-1.0], [1.0], [0.5], [2.0], [-3.0]]))
