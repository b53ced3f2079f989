"""Two moving averages of one series against each other: their spread and their crossover state.

Motivation
----------
A crossover state is a sign, and a sign is not continuous: where the two averages are equal up
to rounding (a flat market, where both settle on the same price) two engines whose averages
differ by one ulp could read +1 and -1. So the averages here are computed with exactly the
operations, in exactly the order, of the online twins ``SMAStream`` and ``EMAStream``: a sliding
sum replaced every ``n`` values by a sum built as the values arrive, and the recursion
``e = (x - e) * k + e`` after a sequential seed sum. The batch and online averages, hence the
spread and the state, are then the same bits, and the tie band :data:`CROSS_TIE` (averages that
close are rounding, so the state is 0, not a cross) is applied to identical numbers.

The averages are as accurate as the twins (within a few ulps of the exact average; see
``tests/features/test_talib.py`` for TA-Lib's SMA and EMA).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg, jit

# |MA(fast) - MA(slow)| <= CROSS_TIE * |MA(slow)| reads as equal (state 0). Far above the
# averages' rounding (~1e-14 even after 40% jumps), far below any spread a strategy could trade.
CROSS_TIE = 1e-10


@jit
def _sma_stream_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """SMA with ``SMAStream``'s operations, bit for bit."""
    buf = np.zeros(n)
    i = 0
    total = 0.0
    acc = 0.0
    for t in range(x.size):
        v = x[t]
        old = buf[i]
        buf[i] = v
        acc = acc + v if i else v
        if i == n - 1:
            i = 0
            total = acc
        else:
            i += 1
            if t < n:
                out[t] = np.nan
                continue
            total = total + (v - old)
        out[t] = total / n


@jit
def _ema_stream_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """EMA with ``EMAStream``'s operations (TA-Lib's SMA seed), bit for bit."""
    k = 2.0 / (n + 1.0)
    e = 0.0
    for t in range(x.size):
        v = x[t]
        if t >= n:
            e = (v - e) * k + e
            out[t] = e
        elif t == n - 1:
            e = (e + v) / n
            out[t] = e
        else:
            e += v
            out[t] = np.nan


@jit
def _pair_into(
    x: FloatArray, fast: int, slow: int, ema: bool, f: FloatArray, s: FloatArray
) -> None:
    if ema:
        _ema_stream_into(x, fast, f)
        _ema_stream_into(x, slow, s)
    else:
        _sma_stream_into(x, fast, f)
        _sma_stream_into(x, slow, s)


@jit
def _cross_into(f: FloatArray, s: FloatArray, tie: float, out: FloatArray) -> None:
    for t in range(f.size):
        d = f[t] - s[t]
        tol = tie * abs(s[t])
        if d > tol:
            out[t] = 1.0
        elif d < -tol:
            out[t] = -1.0
        elif d == d and tol == tol:
            out[t] = 0.0
        else:
            out[t] = np.nan


def _pair(x: ArrayLike, fast: int, slow: int, kind: str, func: str) -> tuple[FloatArray, ...]:
    fast = int_arg(fast, func, "fast", 1)
    slow = int_arg(slow, func, "slow", 1)
    if slow <= fast:
        raise ValueError(f"{func}: slow must be greater than fast, got fast={fast}, slow={slow}")
    if kind not in ("sma", "ema"):
        raise ValueError(f"{func}: kind must be 'sma' or 'ema', got {kind!r}")
    arr = as_series(x, func)
    f = np.empty(arr.size)
    s = np.empty(arr.size)
    _pair_into(arr, fast, slow, kind == "ema", f, s)
    return f, s


def ma_spread(x: ArrayLike, fast: int, slow: int, kind: str = "sma") -> FloatArray:
    """``MA(x, fast) / MA(x, slow) - 1``: trend strength as a fraction, scale-free.

    ``kind`` is ``"sma"`` or ``"ema"`` (TA-Lib's seeding); ``1 <= fast < slow``.

    Warm-up: first value at index ``slow - 1``.

    Examples
    --------
    >>> ma_spread([1.0, 2.0, 3.0, 4.0], 1, 2)  # x / (mean of the last two) - 1
    array([       nan, 0.33333333, 0.2       , 0.14285714])
    """
    f, s = _pair(x, fast, slow, kind, "ma_spread")
    np.divide(f, s, out=f)
    f -= 1.0
    return f


def ma_cross(x: ArrayLike, fast: int, slow: int, kind: str = "sma") -> FloatArray:
    """Crossover state: +1 where ``MA(fast) > MA(slow)``, -1 where below, 0 where equal.

    Equal means within :data:`CROSS_TIE` of ``|MA(slow)|`` (rounding, as on a flat market).
    ``kind`` is ``"sma"`` or ``"ema"``; ``1 <= fast < slow``.

    Warm-up: first value at index ``slow - 1``.

    Examples
    --------
    >>> ma_cross([3.0, 2.0, 1.0, 1.0, 1.0, 4.0], 1, 3)
    array([nan, nan, -1., -1.,  0.,  1.])
    """
    f, s = _pair(x, fast, slow, kind, "ma_cross")
    out = np.empty(f.size)
    _cross_into(f, s, CROSS_TIE, out)
    return out
