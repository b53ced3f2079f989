"""Moving averages: simple, exponential, and the distance of a price from either."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg, jit

# The SMA's running sum is replaced by an exact sum at least every this many bars (and every
# ``n`` bars for longer windows), so its rounding error spans a bounded stretch of history.
_RESUM_EVERY = 64


@jit
def _window_sum(w: FloatArray) -> float:
    """Exact (two-pass-grade) sum of a short window, four accumulators wide."""
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 3 < w.size:
        s0 += w[i]
        s1 += w[i + 1]
        s2 += w[i + 2]
        s3 += w[i + 3]
        i += 4
    while i < w.size:
        s0 += w[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@jit
def _sma_into(x: FloatArray, n: int, out: FloatArray) -> None:
    m = x.size
    out[: min(n - 1, m)] = np.nan
    inv = 1.0 / n
    step = n * max(1, _RESUM_EVERY // n)
    for a in range(n - 1, m, step):
        total = _window_sum(x[a - n + 1 : a + 1])
        k = min(step, m - a)
        o = out[a : a + k]
        o[0] = total * inv
        new = x[a + 1 : a + k]
        old = x[a + 1 - n : a + k - n]
        # Two bars per step, so the loop-carried dependency is one addition per two bars.
        j = 0
        while j + 1 < k - 1:
            d0 = new[j] - old[j]
            d1 = new[j + 1] - old[j + 1]
            o[j + 1] = (total + d0) * inv
            total = total + (d0 + d1)
            o[j + 2] = total * inv
            j += 2
        if j < k - 1:
            total += new[j] - old[j]
            o[j + 1] = total * inv
        if not math.isfinite(total):
            # A NaN or inf poisons a running sum for good: from the first window it reached,
            # sum every window of this stretch exactly, so only windows containing it are hit.
            first = 0
            while math.isfinite(o[first]):
                first += 1
            for i in range(max(first, 1), k):
                o[i] = _window_sum(x[a + i - n + 1 : a + i + 1]) * inv


@jit
def _ema_into(x: FloatArray, n: int, out: FloatArray) -> None:
    m = x.size
    out[: min(n - 1, m)] = np.nan
    if m < n:
        return
    k = 2.0 / (n + 1.0)
    a = 1.0 - k
    a2 = a * a
    e = 0.0
    for i in range(n):
        e += x[i]
    e /= n
    out[n - 1] = e
    f = x[n:]
    o = out[n:]
    # e[t+1] = a e[t] + k x[t+1], taken two bars at a time: e[t+2] = a^2 e[t] + (a k x[t+1] +
    # k x[t+2]) halves the dependency chain that bounds the loop's speed.
    j = 0
    while j + 1 < f.size:
        u = k * f[j]
        v = a * u + k * f[j + 1]
        o[j] = a * e + u
        e = a2 * e + v
        o[j + 1] = e
        j += 2
    if j < f.size:
        o[j] = a * e + k * f[j]


def sma(x: ArrayLike, n: int) -> FloatArray:
    """Simple moving average of the last ``n`` values, as TA-Lib's ``SMA``.

    A running sum, replaced by an exact sum at least every ``max(n, 64)`` bars so rounding cannot
    accumulate over a long series (TA-Lib's never is). A window holding a NaN or inf is NaN
    (or inf); windows after it are not.

    Warm-up: first value at index ``n - 1``.

    Examples
    --------
    >>> sma([1.0, 2.0, 3.0, 4.0, 5.0], 3)
    array([nan, nan,  2.,  3.,  4.])
    """
    n = int_arg(n, "sma", "n", 1)
    arr = as_series(x, "sma")
    out = np.empty(arr.size)
    _sma_into(arr, n, out)
    return out


def ema(x: ArrayLike, n: int) -> FloatArray:
    """Exponential moving average with TA-Lib's seeding.

    Seeded with the simple mean of the first ``n`` values, then
    ``e = (1 - alpha) * e_prev + alpha * x`` with ``alpha = 2 / (n + 1)``, so values match
    TA-Lib's ``EMA`` instead of depending on an arbitrary first-value seed. A NaN input makes
    every later value NaN: the average never forgets it.

    Warm-up: first value at index ``n - 1``.

    Examples
    --------
    >>> ema([2.0, 4.0, 6.0, 8.0, 2.0], 3)  # alpha = 0.5, seeded with mean(2, 4, 6)
    array([nan, nan,  4.,  6.,  4.])
    """
    n = int_arg(n, "ema", "n", 1)
    arr = as_series(x, "ema")
    out = np.empty(arr.size)
    _ema_into(arr, n, out)
    return out


def dist_ma(close: ArrayLike, n: int, kind: str = "sma") -> FloatArray:
    """Relative distance of ``close`` from its moving average, ``close / MA - 1``.

    Scale-free, so one model can read it across instruments and price levels. ``kind`` is
    ``"sma"`` or ``"ema"`` (TA-Lib seeding, see :func:`ema`).

    Warm-up: first value at index ``n - 1``.
    """
    n = int_arg(n, "dist_ma", "n", 1)
    if kind not in ("sma", "ema"):
        raise ValueError(f"dist_ma: kind must be 'sma' or 'ema', got {kind!r}")
    arr = as_series(close, "dist_ma")
    out = np.empty(arr.size)
    (_sma_into if kind == "sma" else _ema_into)(arr, n, out)
    np.divide(arr, out, out=out)
    out -= 1.0
    return out
