"""Wilder-smoothed indicators, seeded as TA-Lib seeds them: RSI and ATR.

Wilder's smoothing is an exponential average with ``alpha = 1 / n``, seeded with the simple mean
of the first ``n`` inputs: ``avg = (avg * (n - 1) + x) / n``. The kernels evaluate it as
``avg * (1 - 1/n) + x / n``, which keeps one multiply and one add on the loop-carried path
instead of TA-Lib's multiply, add and divide; the two agree to a few units in the last place.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg, jit


@jit
def _rsi_into(x: FloatArray, n: int, out: FloatArray) -> None:
    m = x.size
    out[: min(n, m)] = np.nan
    if m <= n:
        return
    gain = 0.0
    loss = 0.0
    for t in range(1, n + 1):
        d = x[t] - x[t - 1]
        if d < 0.0:
            loss -= d
        else:
            gain += d
    gain /= n
    loss /= n
    total = gain + loss
    out[n] = 100.0 * (gain / total) if total != 0.0 else 50.0
    keep = (n - 1.0) / n
    take = 1.0 / n
    cur = x[n + 1 :]
    prev = x[n : m - 1]
    o = out[n + 1 :]
    for j in range(cur.size):
        d = cur[j] - prev[j]
        # Written so a NaN change reaches ``gain`` (and every later value), as in TA-Lib.
        gain = keep * gain + take * (0.0 if d < 0.0 else d)
        loss = keep * loss + take * (-d if d < 0.0 else 0.0)
        total = gain + loss
        o[j] = 100.0 * (gain / total) if total != 0.0 else 50.0


@jit
def _true_range(high: float, low: float, prev_close: float) -> float:
    """TA-Lib's ``TRANGE``, with its comparison order (a NaN range stays NaN)."""
    tr = high - low
    gap = abs(high - prev_close)
    if gap > tr:
        tr = gap
    gap = abs(low - prev_close)
    if gap > tr:
        tr = gap
    return tr


@jit
def _atr_into(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, out: FloatArray
) -> None:
    m = close.size
    out[: min(n, m)] = np.nan
    if m <= n:
        return
    avg = 0.0
    for t in range(1, n + 1):
        avg += _true_range(high[t], low[t], close[t - 1])
    avg /= n
    out[n] = avg
    keep = (n - 1.0) / n
    take = 1.0 / n
    h = high[n + 1 :]
    lo = low[n + 1 :]
    prev = close[n : m - 1]
    o = out[n + 1 :]
    for j in range(h.size):
        avg = keep * avg + take * _true_range(h[j], lo[j], prev[j])
        o[j] = avg


def rsi(close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's relative strength index, computed as TA-Lib's ``RSI``.

    The first average gain/loss is the simple mean of the first ``n`` changes
    ``close[1..n]``; afterwards ``avg = (avg * (n - 1) + change) / n``, and
    ``RSI = 100 * gain / (gain + loss)``. When both averages are exactly 0 (no movement
    since the start) the RSI is 50, neutral: TA-Lib instead returns 0 whenever
    ``|gain + loss| < 1e-8``, a scale-dependent threshold that would read a flat market as
    maximally oversold.

    Warm-up: first value at index ``n``.

    Examples
    --------
    >>> rsi([10.0, 11.0, 10.5, 12.0, 11.0], 3).round(4)  # 100 * (5/6) / 1, then 100 * 5/9
    array([    nan,     nan,     nan, 83.3333, 55.5556])
    """
    n = int_arg(n, "rsi", "n", 1)
    arr = as_series(close, "rsi")
    out = np.empty(arr.size)
    _rsi_into(arr, n, out)
    return out


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's average true range, computed as TA-Lib's ``ATR``.

    The true range at ``t >= 1`` is ``max(high - low, |high - close[t-1]|, |low - close[t-1]|)``:
    the bar's range widened by any gap from the previous close, so overnight moves count as
    volatility. The first ATR is the mean of the true ranges at ``1..n``, then Wilder smoothing.

    Warm-up: first value at index ``n``.

    Examples
    --------
    >>> atr([11.0, 12.0, 14.0, 13.0], [9.0, 10.0, 11.0, 12.0], [10.0, 11.0, 13.0, 12.5], 2)
    array([ nan,  nan, 2.5 , 1.75])
    """
    n = int_arg(n, "atr", "n", 1)
    h = as_series(high, "atr")
    lo = as_series(low, "atr")
    c = as_series(close, "atr")
    if not h.size == lo.size == c.size:
        raise ValueError(
            "atr: high, low and close must have the same length, "
            f"got {h.size}, {lo.size} and {c.size}"
        )
    out = np.empty(c.size)
    _atr_into(h, lo, c, n, out)
    return out
