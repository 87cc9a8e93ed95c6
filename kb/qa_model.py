"""How the trained Q&A models score features: linear weights and a small tree ensemble.

Both read plain data from kb/qa_weights.py (written by bench/qa_train.py), so nothing
is unpickled and scikit-learn is not needed at run time.
"""
from __future__ import annotations

import math
import threading

import numpy as np


def dot(weights: dict[str, float], features: dict[str, float]) -> float:
    """Score a sparse feature dict with a weight dict (a logistic regression's logit)."""
    return sum(weights.get(name, 0.0) * value for name, value in features.items())


def sigmoid(x: float) -> float:
    """The logistic function, safe for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Forest:
    """Gradient-boosted trees exported from scikit-learn, evaluated for many rows at once.

    spec: {"features": [names], "baseline": float, "trees": [[node, ...], ...]} where a
    node is [feature, threshold, left, right] (go left when x <= threshold) or [value]
    for a leaf; left/right index nodes of the same tree.
    """

    def __init__(self, spec: dict):
        self.names: list[str] = list(spec["features"])
        self.index = {name: i for i, name in enumerate(self.names)}
        self.baseline = float(spec["baseline"])
        feature, threshold, left, right, value, leaf, roots = [], [], [], [], [], [], []
        for tree in spec["trees"]:
            offset = len(feature)
            roots.append(offset)
            for node in tree:
                if len(node) == 1:
                    feature.append(0)
                    threshold.append(0.0)
                    left.append(len(feature) - 1)  # a leaf points at itself
                    right.append(len(feature) - 1)
                    value.append(float(node[0]))
                    leaf.append(True)
                else:
                    feature.append(int(node[0]))
                    threshold.append(float(node[1]))
                    left.append(offset + int(node[2]))
                    right.append(offset + int(node[3]))
                    value.append(0.0)
                    leaf.append(False)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.value = np.asarray(value, dtype=np.float64)
        self.leaf = np.asarray(leaf, dtype=bool)
        self.roots = np.asarray(roots, dtype=np.int64)

    def matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Turn sparse feature dicts into the dense matrix the trees read (absent = 0)."""
        x = np.zeros((len(rows), len(self.names)))
        index = self.index
        for r, feats in enumerate(rows):
            for name, v in feats.items():
                j = index.get(name)
                if j is not None:
                    x[r, j] = v
        return x

    def decision(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Return the ensemble's raw score (a logit) for each row."""
        if not rows:
            return np.zeros(0)
        x = self.matrix(rows)
        n = len(rows)
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        row = np.arange(n)[:, None]
        while True:
            inner = ~self.leaf[node]
            if not inner.any():
                break
            go_left = x[row, self.feature[node]] <= self.threshold[node]
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, nxt, node)
        return self.baseline + self.value[node].sum(axis=1)


_forests: dict[int, tuple[dict, Forest]] = {}
_forests_lock = threading.Lock()


def forest(spec: dict) -> Forest:
    """Return the Forest of a spec, built once per spec object."""
    key = id(spec)
    with _forests_lock:
        hit = _forests.get(key)
        if hit is None or hit[0] is not spec:
            hit = (spec, Forest(spec))
            _forests[key] = hit
        return hit[1]
