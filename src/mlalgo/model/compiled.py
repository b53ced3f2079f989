"""LightGBM's text model evaluated by numba: the bundle's booster without lightgbm.

Motivation: the live executor scores one bar at a time. ``lgb.Booster.predict`` spends tens of
microseconds per call before and after it walks the trees, and ``import lightgbm`` pulls pandas
and scikit-learn into the process. :class:`CompiledModel` reads the same ``model.txt`` (the text
stays the source of truth) into a few flat numpy arrays and evaluates them in numba with
LightGBM's own rules, so predictions are the same doubles, not merely close:

- inputs with ``|x| <= kZeroThreshold`` (``1e-35f`` widened to double) are zero, as LightGBM's
  dense-row reader drops them before prediction;
- a numerical split reads its missing type from bits 2-3 of ``decision_type``: ``NaN`` sends NaN
  to the default side (bit 1) and compares the rest; ``Zero`` sends NaN and zero there; ``None``
  compares NaN as ``0.0``. Every comparison is ``x <= threshold`` in float64;
- the raw score is ``0.0`` plus each tree's leaf value, in file order;
- ``binary sigmoid:s`` maps it through ``1 / (1 + exp(-s * raw))``, ``s`` parsed by LightGBM's
  own (not correctly rounded) parser; ``regression`` leaves it as is.

Trees of up to 64 leaves (the pipeline's are 15, its tuning space stops at 63) are evaluated
without walking them: a walk is a chain of data-dependent branches, and mispredicted branches,
not arithmetic, set its speed. Instead each feature finds, by one binary search, the splits its
value fails (those are a prefix of the feature's splits sorted by threshold) and clears the
leaves under their left children from a per-tree 64-bit mask; the leftmost leaf left in a mask
is the leaf the walk would reach. Models with a larger tree are walked node by node.

Every tree in the file is used, which is what ``lgb.Booster(model_str=text).predict`` does:
the text format stores no best iteration (``model_to_string`` already cut the trees at it).
Categorical splits, linear trees, multiclass, random-forest averaging and other objectives are
refused with a ``ValueError`` rather than approximated. This module imports numpy and numba
only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit

from mlalgo.model.lgbm_text import header_names, split_model

__all__ = ["K_ZERO_THRESHOLD", "CompiledModel"]

K_ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's ``const double kZeroThreshold = 1e-35f``: the float literal, widened."""

MAX_MASK_LEAVES = 64
_ALL_LEAVES = np.uint64(2**64 - 1)
# A mask's lowest set bit times this de Bruijn constant has a distinct top six bits for each bit
# position, so a 64-entry table turns it into the position (the leaf) without a CPU intrinsic.
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int64)
_DEBRUIJN_INDEX[[((int(_DEBRUIJN) << bit) % 2**64) >> 58 for bit in range(64)]] = np.arange(64)

_IDENTITY, _SIGMOID = 0, 1
_CATEGORICAL_MASK, _DEFAULT_LEFT_MASK = 1, 2
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2
_NAN_LEFT, _ZERO_LEFT = 1, 2
_NUMBER = re.compile(r"\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?)(\d*))?\s*")
_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True, eq=False, repr=False)
class CompiledModel:
    """A LightGBM text model as flat arrays, evaluated by numba; build it with
    :meth:`from_text`.

    >>> text = "\\n".join([
    ...     "tree", "version=v4", "num_class=1", "num_tree_per_iteration=1",
    ...     "max_feature_idx=0", "objective=regression", "feature_names=x", "",
    ...     "Tree=0", "num_leaves=2", "num_cat=0", "split_feature=0", "threshold=0.5",
    ...     "decision_type=2", "left_child=-1", "right_child=-2", "leaf_value=-1 1", "",
    ...     "end of trees",
    ... ])
    >>> model = CompiledModel.from_text(text)
    >>> model
    CompiledModel(1 trees, 1 splits, 1 features, objective='regression', layout='bitmask')
    >>> model.predict(np.array([[0.5], [0.6], [np.nan]])).tolist()
    [-1.0, 1.0, -1.0]
    """

    feature_names: tuple[str, ...]
    objective: str
    n_trees: int
    n_splits: int
    layout: str  # "bitmask" (every tree has at most 64 leaves) or "walk"
    arrays: tuple[np.ndarray, ...] = field(repr=False)
    transform: int
    sigmoid: float
    _one: Callable[..., float] = field(repr=False)
    _many: Callable[..., np.ndarray] = field(repr=False)
    _row_shape: tuple[int] = field(repr=False)

    @classmethod
    def from_text(cls, text: str, *, layout: str | None = None) -> CompiledModel:
        """Parse ``Booster.model_to_string()`` output and compile (or load numba's cached
        machine code) now, so the first live bar does not pay for it.

        ``layout`` is ``"bitmask"`` (trees of up to 64 leaves; the default when it applies)
        or ``"walk"``; both give the same results, which the tests check.
        """
        header, blocks = split_model(text)
        names = header_names(header)
        transform, sigmoid = _objective(header["objective"])
        trees = [_parse_tree(t, block, len(names)) for t, block in enumerate(blocks)]
        fits = all(len(tree.leaf_values) <= MAX_MASK_LEAVES for tree in trees)
        layout = layout or ("bitmask" if fits else "walk")
        if layout == "bitmask" and fits:
            arrays, one, many = _bitmask_layout(trees, len(names)), *_BITMASK
        elif layout == "walk":
            arrays, one, many = _walk_layout(trees), *_WALK
        else:
            raise ValueError(
                f"layout {layout!r}: expected 'walk', or 'bitmask' for trees of up to "
                f"{MAX_MASK_LEAVES} leaves"
            )
        n_splits = sum(len(tree.feature) for tree in trees)
        model = cls(
            names,
            header["objective"],
            len(trees),
            n_splits,
            layout,
            arrays,
            transform,
            sigmoid,
            one,
            many,
            (len(names),),
        )
        model.predict_one(np.zeros(len(names)))
        model.predict(np.zeros((1, len(names))))
        return model

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """What ``Booster.predict`` returns for rows of features in ``feature_names`` order."""
        return self._many(self._rows(x), *self.arrays, self.transform, self.sigmoid)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """What ``Booster.predict(raw_score=True)`` returns: the sum of leaf values."""
        return self._many(self._rows(x), *self.arrays, _IDENTITY, 1.0)

    def predict_one(self, row: np.ndarray) -> float:
        """The prediction for one row, the live per-bar path: a float64 row of the right
        length goes to the compiled code as it is, without a check that costs a copy."""
        if (
            row.__class__ is not np.ndarray
            or row.dtype is not _FLOAT64
            or row.shape != self._row_shape
        ):
            row = np.asarray(row, dtype=np.float64)
            if row.shape != self._row_shape:
                raise ValueError(
                    f"expected one row of {self.n_features} features "
                    f"({', '.join(self.feature_names)}), got shape {row.shape}"
                )
        return self._one(row, *self.arrays, self.transform, self.sigmoid)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of {self.n_features} features "
                f"({', '.join(self.feature_names)}), got shape {rows.shape}"
            )
        return rows

    def __repr__(self) -> str:
        return (
            f"CompiledModel({self.n_trees} trees, {self.n_splits} splits, {self.n_features} "
            f"features, objective={self.objective!r}, layout={self.layout!r})"
        )


# ------------------------------------------------------------------ compiled evaluation
# The kernels take the layout's arrays positionally, as CompiledModel.arrays holds them.


@njit(cache=True)
def _output(raw, transform, sigmoid):
    if transform == _SIGMOID:
        return 1.0 / (1.0 + math.exp(-sigmoid * raw))
    return raw


@njit(cache=True)
def _bitmask_raw(row, offsets, thresholds, entries, leaf_values, reached):
    n_features = row.shape[0]
    reached[:] = _ALL_LEAVES
    for f in range(n_features):
        x = row[f]
        if math.isnan(x):
            section = 1
        elif abs(x) <= K_ZERO_THRESHOLD:
            section = 2
        else:
            section = 0
        lo = offsets[section * (n_features + 1) + f]
        hi = offsets[section * (n_features + 1) + f + 1]
        if section == 0:  # the splits x fails (threshold < x) are a prefix of the sorted ones
            first = lo
            while lo < hi:
                mid = (lo + hi) >> 1
                if thresholds[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            lo, hi = first, lo
        for k in range(lo, hi):
            reached[entries[k, 0]] &= entries[k, 1]
    leaf_offsets = offsets[3 * (n_features + 1) :]
    total = 0.0
    for t in range(reached.shape[0]):
        lowest = reached[t] & (~reached[t] + np.uint64(1))
        leaf = _DEBRUIJN_INDEX[(lowest * _DEBRUIJN) >> np.uint64(58)]
        total += leaf_values[leaf_offsets[t] + leaf]
    return total


@njit(cache=True)
def _bitmask_one(row, offsets, thresholds, entries, leaf_values, transform, sigmoid):
    reached = np.empty(offsets.shape[0] - 3 * (row.shape[0] + 1) - 1, dtype=np.uint64)
    raw = _bitmask_raw(row, offsets, thresholds, entries, leaf_values, reached)
    return _output(raw, transform, sigmoid)


@njit(cache=True)
def _bitmask_rows(rows, offsets, thresholds, entries, leaf_values, transform, sigmoid):
    reached = np.empty(offsets.shape[0] - 3 * (rows.shape[1] + 1) - 1, dtype=np.uint64)
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        raw = _bitmask_raw(rows[i], offsets, thresholds, entries, leaf_values, reached)
        out[i] = _output(raw, transform, sigmoid)
    return out


@njit(cache=True)
def _walk_raw(row, roots, nodes, thresholds, leaf_values):
    total = 0.0
    for t in range(roots.shape[0]):
        node = roots[t]
        while node >= 0:
            x = row[nodes[node, 0]]
            if math.isnan(x):
                go_left = (nodes[node, 3] & _NAN_LEFT) != 0
            elif abs(x) <= K_ZERO_THRESHOLD:
                go_left = (nodes[node, 3] & _ZERO_LEFT) != 0
            else:
                go_left = x <= thresholds[node]
            node = nodes[node, 1] if go_left else nodes[node, 2]
        total += leaf_values[~node]
    return total


@njit(cache=True)
def _walk_one(row, roots, nodes, thresholds, leaf_values, transform, sigmoid):
    return _output(_walk_raw(row, roots, nodes, thresholds, leaf_values), transform, sigmoid)


@njit(cache=True)
def _walk_rows(rows, roots, nodes, thresholds, leaf_values, transform, sigmoid):
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        raw = _walk_raw(rows[i], roots, nodes, thresholds, leaf_values)
        out[i] = _output(raw, transform, sigmoid)
    return out


_BITMASK = (_bitmask_one, _bitmask_rows)
_WALK = (_walk_one, _walk_rows)


# ------------------------------------------------------------------ the text format


def _objective(objective: str) -> tuple[int, float]:
    """``(transform, sigmoid)`` for the header's ``objective=`` value."""
    name, *options = objective.split()
    if name == "regression" and not options:
        return _IDENTITY, 1.0
    if name == "binary" and len(options) == 1 and options[0].startswith("sigmoid:"):
        sigmoid = _lightgbm_atof(options[0].removeprefix("sigmoid:"))
        if sigmoid > 0.0:
            return _SIGMOID, sigmoid
    raise ValueError(
        f"model text: objective {objective!r} is not supported; the compiled model evaluates "
        "'binary sigmoid:<s>' and 'regression' (use lgb.Booster for anything else)"
    )


def _lightgbm_atof(text: str) -> float:
    """LightGBM's ``Common::Atof``, which it uses to read the objective's sigmoid back.

    It sums digits in float64 instead of rounding the decimal once, so for some strings it
    differs from ``float(text)`` in the last bit; the loaded booster uses its result.

    >>> _lightgbm_atof("1.23457") == 1.0 + 23457.0 / 1e5
    True
    """
    match = _NUMBER.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        raise ValueError(f"model text: {text!r} is not a number")
    sign, integer, fraction, exp_sign, exponent = match.groups()
    value = 0.0
    for digit in integer:
        value = value * 10.0 + int(digit)
    if fraction:
        right = 0.0
        for digit in fraction:
            right = int(digit) + right * 10.0
        value += right / _lightgbm_pow(10.0, len(fraction))
    scale, expon = 1.0, min(int(exponent or 0), 308)
    while expon >= 50:
        scale, expon = scale * 1e50, expon - 50
    while expon >= 8:
        scale, expon = scale * 1e8, expon - 8
    while expon > 0:
        scale, expon = scale * 10.0, expon - 1
    value = value / scale if exp_sign == "-" else value * scale
    return -value if sign == "-" else value


def _lightgbm_pow(base: float, power: int) -> float:
    """``Common::Pow``: its multiplication order decides the rounding beyond 10**22."""
    if power == 0:
        return 1.0
    if power % 2 == 0:
        return _lightgbm_pow(base * base, power // 2)
    if power % 3 == 0:
        return _lightgbm_pow(base * base * base, power // 3)
    return base * _lightgbm_pow(base, power - 1)


class _Tree(NamedTuple):
    """One tree's splits as LightGBM numbers them, with the missing-value rule resolved into
    where NaN and zero go; children ``c >= 0`` are splits, ``c < 0`` the leaf ``~c``."""

    feature: np.ndarray
    threshold: np.ndarray
    nan_left: np.ndarray
    zero_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_values: np.ndarray
    leaf_order: list[int]  # leaves left to right
    left_leaves: list[int]  # per split, bits (by position in leaf_order) under its left child


def _parse_tree(t: int, block: dict[str, str], n_features: int) -> _Tree:
    """One ``Tree=`` block, checked so that evaluation stays in bounds and terminates."""

    def values(key: str, n: int, kind: type) -> np.ndarray:
        if key not in block:
            raise ValueError(f"model text: Tree={t} lacks {key}")
        parsed = [kind(v) for v in block[key].split()]
        if len(parsed) != n:
            raise ValueError(f"model text: Tree={t} {key} has {len(parsed)} values, expected {n}")
        return np.array(parsed, dtype=np.float64 if kind is float else np.int64)

    if block.get("num_cat", "0") != "0":
        raise ValueError(
            f"model text: Tree={t} has categorical splits (num_cat={block['num_cat']}), which "
            "the compiled model does not support; mlalgo's features are numeric"
        )
    if block.get("is_linear", "0") != "0":
        raise ValueError(f"model text: Tree={t} is a linear tree, which is not supported")
    num_leaves = int(values("num_leaves", 1, int)[0])
    if num_leaves < 1:
        raise ValueError(f"model text: Tree={t} has num_leaves={num_leaves}")
    splits = num_leaves - 1
    feature = values("split_feature", splits, int)
    threshold = values("threshold", splits, float)
    decision = values("decision_type", splits, int)
    left, right = values("left_child", splits, int), values("right_child", splits, int)
    if (decision & _CATEGORICAL_MASK).any():
        raise ValueError(
            f"model text: Tree={t} has categorical splits, which the compiled model does not "
            "support; mlalgo's features are numeric"
        )
    missing = (decision >> 2) & 3
    if ((decision < 0) | (decision > 15) | (missing > _MISSING_NAN)).any():
        raise ValueError(f"model text: Tree={t} has an invalid decision_type")
    if ((feature < 0) | (feature >= n_features)).any():
        raise ValueError(f"model text: Tree={t} splits on a feature index outside the header's")
    index = np.arange(splits)
    for child in (left, right):
        if not np.where(child >= 0, (child > index) & (child < splits), ~child < num_leaves).all():
            raise ValueError(f"model text: Tree={t} has a child index out of order or range")
    order, left_leaves = _leaf_order(t, left.tolist(), right.tolist())
    default_left = (decision & _DEFAULT_LEFT_MASK) != 0
    zero_compares_left = threshold >= 0.0
    return _Tree(
        feature,
        threshold,
        np.where(missing == _MISSING_NONE, zero_compares_left, default_left),
        np.where(missing == _MISSING_ZERO, default_left, zero_compares_left),
        left,
        right,
        values("leaf_value", num_leaves, float),
        order,
        left_leaves,
    )


def _leaf_order(t: int, left: list[int], right: list[int]) -> tuple[list[int], list[int]]:
    """Leaves left to right and, for trees of up to 64 leaves, per split the bits (by that
    order) of the leaves under its left child; children come after their parent, so a
    backward pass sees both children of a split before the split itself."""
    num_leaves, order, stack = len(left) + 1, [], [0 if left else -1]
    while stack:
        child = stack.pop()
        if child < 0:
            order.append(~child)
        else:
            stack += [right[child], left[child]]
        if len(order) > num_leaves:
            break
    if sorted(order) != list(range(num_leaves)):
        raise ValueError(f"model text: Tree={t} does not reach each leaf exactly once")
    if num_leaves > MAX_MASK_LEAVES:
        return order, []
    position = {leaf: i for i, leaf in enumerate(order)}
    below = [0] * len(left)

    def bits(child: int) -> int:
        return below[child] if child >= 0 else 1 << position[~child]

    left_leaves = [0] * len(left)
    for split in reversed(range(len(left))):
        left_leaves[split] = bits(left[split])
        below[split] = left_leaves[split] | bits(right[split])
    return order, left_leaves


def _bitmask_layout(trees: list[_Tree], n_features: int) -> tuple[np.ndarray, ...]:
    """``(offsets, thresholds, entries, leaf_values)`` for :func:`_bitmask_raw`.

    ``entries`` holds ``(tree, mask)`` rows in three sections, each grouped by feature: every
    split sorted by threshold (the splits a value fails come first), the splits that send NaN
    right and those that send zero right. A mask clears the leaves under the split's left
    child. ``offsets`` holds each section's bounds per feature (``n_features + 1`` each), then
    each tree's first leaf in ``leaf_values``, where a tree's leaves run left to right.
    """

    def joined(name: str) -> np.ndarray:
        return np.concatenate([np.empty(0), *(getattr(t, name) for t in trees)])

    feature = joined("feature").astype(np.int64)
    threshold = joined("threshold")
    tree_id = np.repeat(np.arange(len(trees)), [len(t.feature) for t in trees])
    mask = np.array([~bits % 2**64 for t in trees for bits in t.left_leaves], dtype=np.uint64)
    nan_right = np.flatnonzero(joined("nan_left") == 0)
    zero_right = np.flatnonzero(joined("zero_left") == 0)
    sections = [
        np.lexsort((threshold, feature)),
        nan_right[np.argsort(feature[nan_right], kind="stable")],
        zero_right[np.argsort(feature[zero_right], kind="stable")],
    ]
    offsets, base = [], 0
    for idx in sections:
        counts = np.bincount(feature[idx], minlength=n_features)
        offsets.append(base + np.concatenate([[0], np.cumsum(counts)]))
        base += len(idx)
    order = np.concatenate(sections)
    offsets.append(np.cumsum([0] + [len(t.leaf_values) for t in trees]))
    entries = np.empty((len(order), 2), dtype=np.uint64)
    entries[:, 0], entries[:, 1] = tree_id[order], mask[order]
    return (
        np.concatenate(offsets).astype(np.int64),
        np.ascontiguousarray(threshold[sections[0]]),
        entries,
        np.concatenate([np.empty(0), *(t.leaf_values[t.leaf_order] for t in trees)]),
    )


def _walk_layout(trees: list[_Tree]) -> tuple[np.ndarray, ...]:
    """``(roots, nodes, thresholds, leaf_values)`` for :func:`_walk_raw`: ``nodes`` rows are
    (feature, left, right, flags) with children made global (``c < 0``: the leaf ``~c``);
    ``roots`` holds each tree's first split, or ``~leaf`` for a single-leaf tree."""
    roots = np.empty(len(trees), dtype=np.int64)
    nodes, n_nodes, n_leaves = [], 0, 0
    for t, tree in enumerate(trees):
        roots[t] = n_nodes if len(tree.feature) else ~n_leaves
        children = np.column_stack([tree.left, tree.right])
        children = np.where(children >= 0, children + n_nodes, children - n_leaves)
        flags = tree.nan_left * _NAN_LEFT + tree.zero_left * _ZERO_LEFT
        nodes.append(np.column_stack([tree.feature, children, flags]))
        n_nodes += len(tree.feature)
        n_leaves += len(tree.leaf_values)
    cat = np.concatenate
    return (
        roots,
        np.ascontiguousarray(cat([np.empty((0, 4)), *nodes]), dtype=np.int64),
        cat([[], *(t.threshold for t in trees)]).astype(np.float64),
        cat([[], *(t.leaf_values for t in trees)]).astype(np.float64),
    )
