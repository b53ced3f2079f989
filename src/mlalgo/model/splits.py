"""Walk-forward splits that purge every training label reaching into the test block.

Samples are rows at times ``times`` whose labels end at ``t1`` (several symbols may share a time).
The calendar is the sorted set of distinct times. Test blocks of ``step`` calendar bars follow an
initial ``min_train`` bars; a training row must both start before the block and have its whole
label window end before the block starts. Without that purge a model trained on yesterday's
5-day label has seen 4 days of the test block (the leak behind many in-sample "edges").

Two layers, as everywhere in mlalgo: :meth:`PurgedWalkForward.folds` works on plain arrays (the
backtest calls it), and :meth:`PurgedWalkForward.split` is the scikit-learn face: it reads each
row's time from ``X.index`` and its label end from the ``t1`` Series given to ``__init__``, so the
splitter plugs into ``cross_val_score``, ``GridSearchCV`` and friends. :func:`label_windows` is
that translation, shared with :mod:`mlalgo.model.cpcv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

T1_HINT = "pass t1=make_labels(...)['t1'], a Series indexed like X"


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # row positions
    test: np.ndarray
    test_start: np.datetime64
    test_end: np.datetime64


def row_times(X: Any) -> np.ndarray:
    """Each row's time, as naive-UTC ``datetime64[ns]``, from a ``(symbol, time)`` or time index.

    The time lives in the index (not a column) because that is how every mlalgo frame is keyed,
    and because scikit-learn hands the splitter nothing but ``X``.
    """
    index = getattr(X, "index", None)
    if isinstance(index, pd.MultiIndex):
        if "time" not in index.names:
            raise ValueError(
                f"X's MultiIndex has levels {list(index.names)}; the splitter needs one named "
                "'time' (mlalgo frames are indexed by (symbol, time))"
            )
        index = index.get_level_values("time")
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            f"the splitter reads row times from X.index, but X is a {type(X).__name__} "
            f"{'without an index' if index is None else f'indexed by {type(index).__name__}'}; "
            "pass a DataFrame indexed by time or by (symbol, time)"
        )
    return _naive_utc(index)


def label_windows(X: Any, t1: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """``(times, ends)``: the label window ``(times[i], ends[i]]`` of every row of ``X``.

    ``t1`` is looked up by ``X``'s index labels, not by position, so ``X`` may be any subset or
    reordering of the rows ``t1`` was built for (rows dropped for missing features, the training
    part of an outer CV split). NaT ends mean "no label": such rows are never trained on.
    """
    if t1 is None:
        raise ValueError(f"the splitter needs each row's label end to purge; {T1_HINT}")
    if not isinstance(t1, pd.Series):
        raise ValueError(f"t1 must be a pandas Series indexed like X, got {type(t1).__name__}")
    times = row_times(X)
    if len(times) == 0:
        raise ValueError("X has no rows to split")
    end_index = pd.Index(t1)
    if not isinstance(end_index, pd.DatetimeIndex):
        raise ValueError(f"t1 must hold datetimes (label end times), got dtype {t1.dtype}")
    ends = _naive_utc(end_index)
    if _is_tz_aware(X) != (end_index.tz is not None):
        raise ValueError(
            "X's times and t1 must both be timezone-aware or both naive; comparing UTC bar "
            "times with naive label ends would shift every purge by the UTC offset"
        )
    if not t1.index.equals(X.index):
        if not t1.index.is_unique:
            raise ValueError(
                "t1's index has duplicate labels, so X's rows cannot be matched to label ends; "
                f"{T1_HINT}"
            )
        pos = t1.index.get_indexer(X.index)
        if (missing := np.flatnonzero(pos < 0)).size:
            raise ValueError(
                f"{missing.size} rows of X have no label end in t1 (first: "
                f"{X.index[missing[0]]!r}); {T1_HINT}"
            )
        ends = ends[pos]
    if (early := np.flatnonzero(ends < times)).size:
        raise ValueError(
            f"{early.size} rows have t1 before their own time (first: {X.index[early[0]]!r}); "
            "t1 must be the time of the last bar the label reads"
        )
    return times, ends


class PurgedWalkForward:
    """Expanding (or rolling) train window, test blocks stepping forward, purge by ``t1``.

    Parameters
    ----------
    min_train : calendar bars before the first test block.
    step : calendar bars per test block; the model is retrained once per block.
    window : ``"expanding"`` keeps all history; ``"rolling"`` keeps the last ``max_train`` bars.
    max_train : length of the rolling window in calendar bars.
    embargo : kept for API symmetry with :class:`~mlalgo.model.cpcv.CombinatorialPurgedCV`; it
        removes nothing here, by construction. An embargo drops training rows that start within
        ``embargo`` bars *after* a fold's test block (their features may echo the test period).
        Every walk-forward training row starts before its fold's test block, so none can be
        there. Earlier blocks inside a later fold's training window (``"rolling"`` or
        ``"expanding"`` alike) are not that fold's test data: the fold's model is scored only on
        its own block, which lies after all of them. So ``embargo`` is validated (``>= 0``) and
        otherwise ignored; folds are identical for every value.
    t1 : label end per row (``make_labels(...)["t1"]``), indexed like the ``X`` given to
        :meth:`split`. Needed only by :meth:`split`/:meth:`get_n_splits`; :meth:`folds` takes
        arrays.

    scikit-learn API: ``split(X)`` reads row times from ``X.index`` (a ``(symbol, time)``
    MultiIndex or a DatetimeIndex; rows in any order) and looks each row up in ``t1`` by index
    label, following mlfinlab's ``PurgedKFold(samples_info_sets=t1)``. ``__init__`` only stores.
    """

    def __init__(
        self,
        min_train: int = 504,
        step: int = 63,
        window: Literal["expanding", "rolling"] = "expanding",
        max_train: int | None = None,
        embargo: int = 0,
        t1: pd.Series | None = None,
    ) -> None:
        self.min_train = min_train
        self.step = step
        self.window = window
        self.max_train = max_train
        self.embargo = embargo
        self.t1 = t1

    def folds(self, times: np.ndarray, t1: np.ndarray) -> Iterator[Fold]:
        """Yield folds over rows; rows with no label end (NaT) are never trained on."""
        self._check()
        times = np.asarray(times, dtype="datetime64[ns]")
        t1 = np.asarray(t1, dtype="datetime64[ns]")
        calendar = np.unique(times)
        self._check_length(len(calendar))
        labelled = ~np.isnat(t1)
        for k, start in enumerate(range(self.min_train, len(calendar), self.step)):
            block = calendar[start : start + self.step]
            first = start - self.max_train if self.window == "rolling" and self.max_train else 0
            lo = calendar[max(first, 0)]
            train_mask = labelled & (times >= lo) & (times < block[0]) & (t1 < block[0])
            test_mask = (times >= block[0]) & (times <= block[-1])
            yield Fold(
                k, np.flatnonzero(train_mask), np.flatnonzero(test_mask), block[0], block[-1]
            )

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(train, test)`` row positions of ``X`` per fold, as scikit-learn splitters yield them.

        ``y`` and ``groups`` are ignored (the time structure is all a split needs).
        """
        self._check()
        times, ends = label_windows(X, self.t1)
        for fold in self.folds(times, ends):
            yield fold.train, fold.test

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds :meth:`split` yields for ``X`` (for ``t1``'s rows when ``X`` is None)."""
        self._check()
        if X is None and not isinstance(self.t1, pd.Series):
            raise ValueError(f"the number of folds depends on the calendar; pass X or {T1_HINT}")
        n_bars = len(np.unique(row_times(self.t1 if X is None else X)))
        self._check_length(n_bars)
        return len(range(self.min_train, n_bars, self.step))

    def __repr__(self) -> str:
        return splitter_repr(self, "min_train", "step", "window", "max_train", "embargo")

    def _check(self) -> None:
        if self.step < 1 or self.min_train < 1:
            raise ValueError(f"step and min_train must be >= 1, got {self.step}, {self.min_train}")
        if self.window not in ("expanding", "rolling"):
            raise ValueError(f"window must be 'expanding' or 'rolling', got {self.window!r}")
        if self.window == "rolling" and not self.max_train:
            raise ValueError("a rolling window needs max_train (stages.backtest.max_train_bars)")
        check_embargo(self.embargo)

    def _check_length(self, n_bars: int) -> None:
        if n_bars <= self.min_train:
            raise ValueError(
                f"{n_bars} bars leave nothing to test after min_train={self.min_train}; "
                "lower stages.backtest.min_train_bars or fetch a longer range"
            )


def check_embargo(embargo: int) -> None:
    if isinstance(embargo, bool) or not isinstance(embargo, int | np.integer) or embargo < 0:
        raise ValueError(f"embargo must be a whole number of bars >= 0, got {embargo!r}")


def _naive_utc(index: pd.DatetimeIndex) -> np.ndarray:
    if index.tz is not None:
        index = index.tz_convert(None)
    return index.to_numpy(dtype="datetime64[ns]")


def _is_tz_aware(X: Any) -> bool:
    index = X.index
    if isinstance(index, pd.MultiIndex):
        index = index.get_level_values("time")
    return index.tz is not None


def splitter_repr(obj: object, *names: str) -> str:
    """Parameters by name; ``t1`` as its length, since printing a whole Series helps nobody."""
    params = [f"{n}={getattr(obj, n)!r}" for n in names]
    t1 = getattr(obj, "t1", None)
    params.append("t1=None" if t1 is None else f"t1=<{len(t1)} label ends>")
    return f"{type(obj).__name__}({', '.join(params)})"
