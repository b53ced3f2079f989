"""Combinatorial purged cross-validation (López de Prado, AFML ch. 12): many paths, not one.

Walk-forward tests each bar once, with one history of models: one out-of-sample path, one Sharpe
ratio, and nothing to say how lucky it was. CPCV cuts the calendar into ``N`` contiguous groups
and makes every combination of ``k`` test groups a split, training on the other groups. Each
group is then tested in ``C(N-1, k-1)`` splits, and those predictions chain into
``C(N, k) * k / N`` complete out-of-sample paths (:meth:`CombinatorialPurgedCV.paths`), so a
strategy is judged by a distribution of backtests.

Training data now lies on both sides of a test group, so two guards are needed (AFML 7.4):
the purge (training labels must not share bars with test labels) and the embargo (training rows
right after the test labels end have features computed from the bars those labels read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import Any

import numpy as np
import pandas as pd

from mlalgo.model.splits import check_embargo, label_windows, row_times, splitter_repr


@dataclass(frozen=True)
class CombinatorialFold:
    index: int  # position in split order
    train: np.ndarray  # row positions
    test: np.ndarray
    test_groups: tuple[int, ...]  # ascending group numbers, 0 = earliest


class CombinatorialPurgedCV:
    """Every choice of ``n_test_groups`` of ``n_groups`` calendar groups as a purged test set.

    Parameters
    ----------
    n_groups : ``N``, contiguous groups of the calendar (the sorted distinct times of ``X``'s
        rows), as equal in bars as possible (sizes differ by at most one; earlier ones larger).
    n_test_groups : ``k``, test groups per split; there are ``C(N, k)`` splits.
    embargo : calendar bars right after the end of each test group's labels (its span, below)
        whose rows are not trained on.
    t1 : label end per row (``make_labels(...)["t1"]``), indexed like the ``X`` given to
        :meth:`split`; rows of ``X`` are looked up in it by index label, so ``X`` may be any
        subset of those rows in any order. ``__init__`` only stores.

    Semantics, for a split with test groups ``G``. A row at time ``t`` with label end ``t1``
    stands on bar ``t`` (its features are computed at its close) and its label reads the bars in
    ``(t, t1]``; call ``[t, t1]`` its footprint.

    - **test**: every row whose time falls in a group of ``G``, labelled or not.
    - **test span** of group ``g``: ``[first_g, T_g]``, from its first bar to the later of its
      last bar and the latest ``t1`` of its rows: the union of its rows' footprints.
    - **purge**: a training row is dropped if its footprint touches the span of any group in
      ``G``: ``t1 >= first_g`` and ``t <= T_g``. Before the group this removes labels that read
      its bars; after it, rows whose bar or label is one the group's labels read (AFML 7.4.1
      purges every training label overlapping a test label, on both sides; counting the row's
      own bar too makes that one bar stricter, the bar at which the label is decided).
    - **embargo**: then rows standing on the ``embargo`` calendar bars right after ``T_g`` are
      dropped: their features (returns, rolling statistics) are computed from bars the test
      labels read. It is counted from where the test labels end, as in AFML snippet 7.2 and
      mlfinlab, because the purge already covers everything up to ``T_g``; counted from the
      group's last bar it would vanish whenever it is shorter than the label horizon. So in
      particular no training row starts within ``embargo`` bars after a test group's last bar.
      Before a test group no embargo is needed: features at ``t`` read bars ``<= t`` only
      (invariant 2), so they cannot see the group.
    - rows with no label end (NaT) are never trained on.

    Calendar bars are the distinct times of ``X``'s rows; ``T_g`` need not be one of them (then
    the embargo starts at the first bar after it).

    scikit-learn API: ``split(X, y=None, groups=None)`` reads times from ``X.index`` (a
    ``(symbol, time)`` MultiIndex or a DatetimeIndex); ``y`` and ``groups`` are ignored.
    """

    def __init__(
        self,
        n_groups: int = 6,
        n_test_groups: int = 2,
        embargo: int = 0,
        t1: pd.Series | None = None,
    ) -> None:
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups
        self.embargo = embargo
        self.t1 = t1

    def folds(self, times: np.ndarray, t1: np.ndarray) -> Iterator[CombinatorialFold]:
        """Yield every split over rows given as arrays (the array face of :meth:`split`)."""
        self._check()
        times = np.asarray(times, dtype="datetime64[ns]")
        t1 = np.asarray(t1, dtype="datetime64[ns]")
        if times.shape != t1.shape:
            raise ValueError(
                f"times and t1 must have one value per row, got {len(times)} and {len(t1)}"
            )
        calendar, bar, group = self._groups(times)
        blocked = np.stack(
            [self._blocked(g, calendar, bar, group, times, t1) for g in range(self.n_groups)]
        )
        labelled = ~np.isnat(t1)
        for s, test_groups in enumerate(self.test_groups()):
            test = np.isin(group, test_groups)
            train = labelled & ~test & ~blocked[list(test_groups)].any(axis=0)
            yield CombinatorialFold(s, np.flatnonzero(train), np.flatnonzero(test), test_groups)

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(train, test)`` row positions of ``X`` per split, in :meth:`test_groups` order."""
        self._check()
        times, ends = label_windows(X, self.t1)
        for fold in self.folds(times, ends):
            yield fold.train, fold.test

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """``C(n_groups, n_test_groups)``, whatever the data."""
        self._check()
        return comb(self.n_groups, self.n_test_groups)

    def test_groups(self) -> list[tuple[int, ...]]:
        """The test groups of each split, in the order :meth:`split` yields them."""
        self._check()
        return list(combinations(range(self.n_groups), self.n_test_groups))

    def paths(self) -> np.ndarray:
        """``(n_paths, n_groups)`` split numbers: path ``p`` takes group ``g`` from split
        ``paths()[p, g]``, one in which ``g`` was tested.

        ``n_paths = C(N, k) * k / N = C(N-1, k-1)``. Path ``p`` uses, for every group, the
        ``p``-th split (in split order) that tested it, so each (split, test group) prediction
        lands in exactly one path and every path covers the whole calendar once.
        """
        splits = self.test_groups()
        return np.array(
            [[s for s, gs in enumerate(splits) if g in gs] for g in range(self.n_groups)],
            dtype=np.intp,
        ).T

    def assemble_paths(self, X: Any, predictions: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(X), n_paths)``: each path's out-of-sample prediction for every row of ``X``.

        ``predictions[s]`` holds one value per test row of split ``s``, in the order
        :meth:`split` gave them (e.g. ``model.predict_proba(X.iloc[test])[:, 1]``).
        """
        _, _, group = self._groups(row_times(X))
        splits, paths = self.test_groups(), self.paths()
        if len(predictions) != len(splits):
            raise ValueError(
                f"expected {len(splits)} prediction arrays, one per split, got {len(predictions)}"
            )
        out = np.full((len(group), len(paths)), np.nan)
        for s, test_groups in enumerate(splits):
            test = np.flatnonzero(np.isin(group, test_groups))
            pred = np.asarray(predictions[s], dtype=np.float64)
            if pred.shape != test.shape:
                raise ValueError(
                    f"split {s} has {len(test)} test rows but {pred.shape} predictions; pass one "
                    "value per test row"
                )
            for g in test_groups:
                in_g = group[test] == g
                (path,) = np.flatnonzero(paths[:, g] == s)
                out[test[in_g], path] = pred[in_g]
        return out

    def __repr__(self) -> str:
        return splitter_repr(self, "n_groups", "n_test_groups", "embargo")

    def _groups(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calendar, each row's bar number on it, and each row's group number."""
        self._check()
        calendar = np.unique(times)
        if len(calendar) < self.n_groups:
            raise ValueError(
                f"{len(calendar)} distinct times cannot be cut into n_groups={self.n_groups} "
                "groups; lower n_groups or pass more rows"
            )
        bar = np.searchsorted(calendar, times)
        starts = [part[0] for part in np.array_split(np.arange(len(calendar)), self.n_groups)]
        return calendar, bar, np.searchsorted(starts, bar, side="right") - 1

    def _blocked(
        self,
        g: int,
        calendar: np.ndarray,
        bar: np.ndarray,
        group: np.ndarray,
        times: np.ndarray,
        t1: np.ndarray,
    ) -> np.ndarray:
        """Rows that may not be trained on whenever group ``g`` is tested: purge and embargo."""
        rows = group == g
        first, span_end = times[rows].min(), times[rows].max()
        ends = t1[rows & ~np.isnat(t1)]
        if ends.size:
            span_end = max(span_end, ends.max())
        purged = (t1 >= first) & (times <= span_end)  # NaT compares False: unlabelled anyway
        after = np.searchsorted(calendar, span_end, side="right")
        return purged | ((bar >= after) & (bar < after + self.embargo))

    def _check(self) -> None:
        n, k = self.n_groups, self.n_test_groups
        if not (_is_int(n) and _is_int(k) and n >= 2 and 1 <= k < n):
            raise ValueError(
                f"need whole numbers 1 <= n_test_groups < n_groups with n_groups >= 2, got "
                f"n_groups={n!r}, n_test_groups={k!r}"
            )
        check_embargo(self.embargo)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
