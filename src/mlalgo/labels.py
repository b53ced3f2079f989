"""Labels: the only code allowed to look forward, and it says exactly how far.

Every label carries its event end (``t1``): the time of the last bar it reads. Cross-validation
uses ``t1`` to purge training samples whose label reaches into a test block.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Entry = Literal["next_open", "close"]


def forward_return(
    open_: np.ndarray, close: np.ndarray, horizon: int, entry: Entry = "next_open"
) -> tuple[np.ndarray, np.ndarray]:
    """Return over ``horizon`` bars as a position decided at bar t would earn it, and its end bar.

    With ``entry="next_open"`` (the backtest's default fill) the trade enters at ``open[t+1]`` and
    is valued at ``open[t+1+horizon]``, so the label is exactly what the position earns. With
    ``entry="close"`` it is ``close[t+horizon] / close[t] - 1``. Bars whose window runs past the
    data are NaN, with end index -1.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    n = len(c)
    shift = 1 if entry == "next_open" else 0
    price = o if entry == "next_open" else c
    end = np.arange(n) + shift + horizon
    ret = np.full(n, np.nan)
    valid = end < n
    start = np.arange(n)[valid] + shift
    ret[valid] = price[end[valid]] / price[start] - 1.0
    return ret, np.where(valid, end, -1)


def make_labels(bars: pd.DataFrame, *, horizon: int, entry: Entry = "next_open") -> pd.DataFrame:
    """Per-symbol forward-sign labels: ``ret``, ``y`` (1.0 up, 0.0 not up, NaN) and ``t1``."""
    parts = []
    for _, group in bars.groupby(level="symbol", sort=False):
        ret, end = forward_return(
            group["open"].to_numpy(), group["close"].to_numpy(), horizon, entry
        )
        times = group.index.get_level_values("time")
        t1 = pd.Series(pd.NaT, index=group.index, dtype=times.dtype)
        t1[end >= 0] = times[end[end >= 0]]
        y = np.where(np.isnan(ret), np.nan, (ret > 0).astype(np.float64))
        parts.append(pd.DataFrame({"ret": ret, "y": y, "t1": t1}, index=group.index))
    return pd.concat(parts)
