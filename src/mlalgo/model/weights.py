"""Sample weights by label uniqueness (López de Prado, AFML ch. 4).

Motivation: a 10-bar label starting every bar shares 9 of its 10 bars with its neighbour, so the
training set holds far fewer independent observations than rows, and a tree treats a run of
overlapping labels as strong repeated evidence. Weighting each label by its average uniqueness
gives a run of mutually overlapping labels roughly the weight of one independent label.

Concurrency is counted **per symbol**: two labels overlap when they read the same returns, which
only happens on the same price path. Labels of different symbols on the same dates are correlated,
not duplicated; pooling them would shrink every weight in a multi-symbol window by the number of
symbols listed that day, punishing dates with more symbols rather than redundant labels.

:func:`check_weights` validates any ``sample_weight`` the estimators receive, these or others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def uniqueness_weights(
    times: Any, t1: Any, symbols: Any = None, *, normalise: bool = True
) -> np.ndarray:
    """Average uniqueness of each row's label window ``(t, t1]``, one weight per row.

    For each bar b of the calendar, the concurrency c_b is the number of the same symbol's label
    windows containing b; a label's uniqueness is the mean of 1/c_b over the bars of its window,
    in (0, 1] (1 when no other label overlaps it). Rows without ``t1`` (NaT/NaN) weigh 0.

    Parameters
    ----------
    times, t1 : per-row label start and event end (``labels["t1"]``), datetimes or bar numbers.
    symbols : per-row symbol; None treats all rows as one symbol.
    normalise : scale to mean 1 over the rows that have ``t1``, so the weights keep LightGBM's
        count-based settings (``min_child_samples``) meaningful.

    The calendar is every distinct time in ``times`` and ``t1`` (shared by all symbols), so pass
    all rows of the training window, not a sample of them.

    Examples
    --------
    Two labels sharing one of their two bars, and a third one apart:

    >>> uniqueness_weights([0, 1, 5], [2, 3, 6], normalise=False)
    array([0.75, 0.75, 1.  ])
    """
    t = pd.Index(times)
    end = pd.Index(t1)
    if len(t) != len(end):
        raise ValueError(f"times ({len(t)}) and t1 ({len(end)}) need one entry per row")
    if t.hasnans:
        raise ValueError("times must not hold NaT/NaN; only t1 may be missing")
    labelled = ~np.asarray(end.isna())
    if not labelled.any():
        raise ValueError("no row has a label end t1; nothing to weight")
    calendar = t.append(end[labelled]).unique().sort_values()
    start_pos = np.asarray(calendar.searchsorted(t, side="right"))
    end_pos = np.zeros(len(t), dtype=np.int64)
    end_pos[labelled] = calendar.searchsorted(end[labelled], side="right")
    if (end_pos[labelled] <= start_pos[labelled]).any():
        raise ValueError("every t1 must be later than its row's time (a label reads ahead)")
    groups = (
        np.zeros(len(t), dtype=np.int64) if symbols is None else pd.factorize(pd.Index(symbols))[0]
    )
    if len(groups) != len(t):
        raise ValueError(f"symbols ({len(groups)}) and times ({len(t)}) need one entry per row")
    weights = np.zeros(len(t))
    for g in np.unique(groups):
        rows = np.flatnonzero((groups == g) & labelled)
        weights[rows] = _average_uniqueness(start_pos[rows], end_pos[rows], len(calendar))
    if normalise:
        weights[labelled] /= weights[labelled].mean()
    return weights


def check_weights(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """A float64 copy of ``sample_weight`` (None stays None), finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    w = np.array(sample_weight, dtype=np.float64, copy=True)
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n_samples},)")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and >= 0")
    if not w.any():
        raise ValueError("Sample weights must contain at least one non-zero number")
    return w


def _average_uniqueness(start: np.ndarray, end: np.ndarray, n_bars: int) -> np.ndarray:
    """Mean of 1/concurrency over bars ``[start, end)`` of each window, by prefix sums."""
    change = np.zeros(n_bars + 1)
    np.add.at(change, start, 1.0)
    np.add.at(change, end, -1.0)
    concurrency = np.cumsum(change[:-1])
    inverse = np.divide(1.0, concurrency, out=np.zeros(n_bars), where=concurrency > 0)
    prefix = np.concatenate([[0.0], np.cumsum(inverse)])
    mean = (prefix[end] - prefix[start]) / (end - start)
    return np.clip(mean, np.finfo(float).tiny, 1.0)
