"""Rows of several symbols on one calendar with label windows, for the splitter tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlalgo.features.kernels import realised_vol
from mlalgo.labels import triple_barrier

NAT = np.datetime64("NaT", "ns")


def shared_calendar_rows(
    n_symbols: int, n_bars: int, max_h: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of several symbols on one daily calendar, shuffled, with a random label horizon each.

    Returns (calendar, times, t1): row ``i`` of a symbol at bar ``b`` has
    ``t1 = calendar[b + h]`` with ``h`` in 1..max_h, NaT when that runs past the end.
    """
    rng = np.random.default_rng(seed)
    calendar = np.arange(n_bars).astype("timedelta64[D]") + np.datetime64("2020-01-01", "ns")
    bar = np.tile(np.arange(n_bars), n_symbols)
    end = bar + rng.integers(1, max_h + 1, size=bar.size)
    t1 = np.where(end < n_bars, calendar[np.minimum(end, n_bars - 1)], NAT)
    order = rng.permutation(bar.size)
    return calendar, calendar[bar][order], t1[order]


def barrier_frame(
    n_symbols: int, n_bars: int, horizon: int, sigma: float, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Triple-barrier labels on random-walk OHLC of symbols sharing one daily UTC calendar.

    Symbols after the first list at a random bar, as real ones do; barriers sit at random
    multiples of a 5-bar realised vol, so label ends vary from 1 to ``horizon + 1`` bars. ``X``'s
    rows are shuffled and ``t1``'s are not: the splitter must match them by index label.
    """
    rng = np.random.default_rng(seed)
    calendar = pd.date_range("2020-01-01", periods=n_bars, freq="D", tz="UTC", name="time")
    parts = []
    for s in range(n_symbols):
        times = calendar[int(rng.integers(0, n_bars // 2)) if s else 0 :]
        n = len(times)
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
        open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, sigma / 3, n))
        wick = np.exp(np.abs(rng.normal(0.0, sigma / 2, (2, n))))
        high, low = np.maximum(open_, close) * wick[0], np.minimum(open_, close) / wick[1]
        res = triple_barrier(
            open_,
            high,
            low,
            close,
            horizon,
            vol=realised_vol(close, 5),
            profit_take=rng.uniform(0.3, 3.0),
            stop_loss=rng.uniform(0.3, 3.0),
        )
        index = pd.MultiIndex.from_product([[f"S{s}"], times], names=["symbol", "time"])
        parts.append(pd.Series(times[np.maximum(res.end, 0)], index=index).where(res.end >= 0))
    t1 = pd.concat(parts).rename("t1")
    X = pd.DataFrame({"x": rng.normal(size=len(t1))}, index=t1.index)
    return X.iloc[rng.permutation(len(X))], t1


def arrays(X: pd.DataFrame, t1: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Naive-UTC row times and label ends in ``X``'s row order, built independently of splits."""
    times = X.index.get_level_values("time").tz_convert(None).to_numpy("datetime64[ns]")
    ends = t1.reindex(X.index).dt.tz_convert(None).to_numpy("datetime64[ns]")
    return times, ends


def footprint_clashes(
    train: np.ndarray, test: np.ndarray, times: np.ndarray, t1: np.ndarray
) -> np.ndarray:
    """Training rows whose footprint ``[t, t1]`` (own bar and label bars) shares a bar with a test
    row's (an unlabelled test row's footprint is its own bar): every pair, in O(n log n)."""
    if len(test) == 0:
        return train[:0]
    start = times[test]
    end = np.where(np.isnat(t1[test]), start, t1[test])
    order = np.argsort(start)
    start, reach = start[order], np.maximum.accumulate(end[order])
    k = np.searchsorted(start, t1[train], side="right")  # test rows starting by the label's end
    return train[(k > 0) & (reach[np.maximum(k - 1, 0)] >= times[train])]
