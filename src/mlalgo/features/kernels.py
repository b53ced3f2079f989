"""Causal feature kernels over 1-D price-like series.

Every kernel returns a new float64 array as long as its input, NaN before its warm-up, and
its value at index ``t`` depends only on ``x[: t + 1]``. Inputs are never written to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AR1Fit",
    "ar1",
    "ar1_zscore",
    "dist_ma",
    "ema",
    "log_return",
    "realised_vol",
    "rolling_std",
    "rsi",
    "sma",
]

FloatArray = NDArray[np.float64]

# A regression residual scale below this fraction of the target's spread is rounding noise.
_S_REL_TOL = 1e-10


def _series(x: ArrayLike, func: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{func}: x must be a 1-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _int_arg(value: object, func: str, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{func}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@njit(cache=True)
def _sma_core(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    total = 0.0
    for t in range(n - 1, x.size):
        if (t - n + 1) % n == 0:
            # Exact re-summation every n steps bounds the drift of the sliding sum.
            total = 0.0
            for i in range(t - n + 1, t + 1):
                total += x[i]
        else:
            total += x[t] - x[t - n]
        out[t] = total / n
    return out


@njit(cache=True)
def _ema_core(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    if x.size < n:
        return out
    k = 2.0 / (n + 1.0)
    e = 0.0
    for i in range(n):
        e += x[i]
    e /= n
    out[n - 1] = e
    for t in range(n, x.size):
        e = (x[t] - e) * k + e
        out[t] = e
    return out


@njit(cache=True)
def _rolling_std_core(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    for t in range(n - 1, x.size):
        start = t - n + 1
        shift = x[start]  # makes a constant window exactly 0 and avoids level cancellation
        mean = 0.0
        for i in range(start, t + 1):
            mean += x[i] - shift
        mean /= n
        ss = 0.0
        for i in range(start, t + 1):
            d = (x[i] - shift) - mean
            ss += d * d
        out[t] = math.sqrt(ss / n)
    return out


@njit(cache=True)
def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 50.0 if total == 0.0 else 100.0 * (gain / total)


@njit(cache=True)
def _rsi_core(x: FloatArray, n: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    if x.size <= n:
        return out
    gain = 0.0
    loss = 0.0
    for t in range(1, n + 1):
        d = x[t] - x[t - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain /= n
    loss /= n
    out[n] = _rsi_value(gain, loss)
    for t in range(n + 1, x.size):
        d = x[t] - x[t - 1]
        # Same operation order as TA-Lib, so results agree to the last bit.
        gain *= n - 1
        loss *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        gain /= n
        loss /= n
        out[t] = _rsi_value(gain, loss)
    return out


@njit(cache=True)
def _ar1_core(
    x: FloatArray, w: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    m = x.size
    alpha = np.full(m, np.nan)
    beta = np.full(m, np.nan)
    resid = np.full(m, np.nan)
    zscore = np.full(m, np.nan)
    half_life = np.full(m, np.nan)
    for t in range(w, m):
        lo = t - w + 1  # pairs (x[s-1], x[s]) for s in lo..t
        cx = x[lo - 1]
        cy = x[lo]
        mx = 0.0
        my = 0.0
        for s in range(lo, t + 1):
            mx += x[s - 1] - cx
            my += x[s] - cy
        mx /= w
        my /= w
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        for s in range(lo, t + 1):
            dx = (x[s - 1] - cx) - mx
            dy = (x[s] - cy) - my
            sxx += dx * dx
            sxy += dx * dy
            syy += dy * dy
        if sxx == 0.0:
            continue
        b = sxy / sxx
        ssr = 0.0
        e = 0.0
        for s in range(lo, t + 1):
            e = ((x[s] - cy) - my) - b * ((x[s - 1] - cx) - mx)
            ssr += e * e
        alpha[t] = (cy + my) - b * (cx + mx)
        beta[t] = b
        resid[t] = e  # the last residual of the window is the current bar's
        sd = math.sqrt(ssr / (w - 2))
        if sd > _S_REL_TOL * math.sqrt(syy / w):
            zscore[t] = e / sd
        if 0.0 < b < 1.0:
            half_life[t] = -math.log(2.0) / math.log(b)
    return alpha, beta, resid, zscore, half_life


def sma(x: ArrayLike, n: int) -> FloatArray:
    """Simple moving average of the last ``n`` values.

    A sliding sum, re-summed exactly every ``n`` steps so rounding cannot accumulate.

    Warm-up: first value at index ``n - 1``.
    """
    n = _int_arg(n, "sma", "n", 1)
    return _sma_core(_series(x, "sma"), n)


def ema(x: ArrayLike, n: int) -> FloatArray:
    """Exponential moving average with TA-Lib's seeding.

    Seeded with the simple mean of the first ``n`` values, then
    ``e = e_prev + alpha * (x - e_prev)`` with ``alpha = 2 / (n + 1)``, so values match
    TA-Lib's ``EMA`` instead of depending on an arbitrary first-value seed.

    Warm-up: first value at index ``n - 1``.
    """
    n = _int_arg(n, "ema", "n", 1)
    return _ema_core(_series(x, "ema"), n)


def rolling_std(x: ArrayLike, n: int) -> FloatArray:
    """Population (``ddof=0``) standard deviation of the last ``n`` values.

    Computed exactly per window (two passes around the window's first value), trading
    O(len * n) time for stability on high-level, low-variance prices where a
    sum-of-squares update cancels catastrophically. ``n >= 2``: a one-value spread is
    identically zero.

    Warm-up: first value at index ``n - 1``.
    """
    n = _int_arg(n, "rolling_std", "n", 2)
    return _rolling_std_core(_series(x, "rolling_std"), n)


def rsi(close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's relative strength index, computed as TA-Lib's ``RSI``.

    The first average gain/loss is the simple mean of the first ``n`` changes
    ``close[1..n]``; afterwards ``avg = (avg * (n - 1) + change) / n``, and
    ``RSI = 100 * gain / (gain + loss)``. When both averages are exactly 0 (no movement
    since the start) the RSI is 50, neutral: TA-Lib instead returns 0 whenever
    ``|gain + loss| < 1e-8``, a scale-dependent threshold that would read a flat market as
    maximally oversold.

    Warm-up: first value at index ``n``.
    """
    n = _int_arg(n, "rsi", "n", 1)
    return _rsi_core(_series(close, "rsi"), n)


def log_return(x: ArrayLike, k: int = 1) -> FloatArray:
    """Log return over ``k`` bars, ``ln(x[t] / x[t - k])``; additive across horizons.

    Warm-up: first value at index ``k``.
    """
    k = _int_arg(k, "log_return", "k", 1)
    arr = _series(x, "log_return")
    out = np.full(arr.size, np.nan)
    if arr.size > k:
        out[k:] = np.log(arr[k:] / arr[:-k])
    return out


def realised_vol(close: ArrayLike, n: int) -> FloatArray:
    """Population standard deviation of the last ``n`` one-bar log returns.

    Per-bar scale, not annualised, so it is comparable across bar frequencies only after
    the caller scales it. ``n >= 2``.

    Warm-up: first value at index ``n`` (the first return exists at index 1).
    """
    n = _int_arg(n, "realised_vol", "n", 2)
    arr = _series(close, "realised_vol")
    out = np.full(arr.size, np.nan)
    if arr.size > n:
        out[1:] = _rolling_std_core(np.log(arr[1:] / arr[:-1]), n)
    return out


def dist_ma(close: ArrayLike, n: int, kind: str = "sma") -> FloatArray:
    """Relative distance of ``close`` from its moving average, ``close / MA - 1``.

    ``kind`` is ``"sma"`` or ``"ema"`` (TA-Lib seeding, see :func:`ema`).

    Warm-up: first value at index ``n - 1``.
    """
    n = _int_arg(n, "dist_ma", "n", 1)
    if kind not in ("sma", "ema"):
        raise ValueError(f"dist_ma: kind must be 'sma' or 'ema', got {kind!r}")
    arr = _series(close, "dist_ma")
    ma = _sma_core(arr, n) if kind == "sma" else _ema_core(arr, n)
    return arr / ma - 1.0


@dataclass(frozen=True, slots=True)
class AR1Fit:
    """Rolling AR(1) fit; every array is as long as the input and NaN before ``window``."""

    alpha: FloatArray
    beta: FloatArray
    resid: FloatArray
    zscore: FloatArray
    half_life: FloatArray


def ar1(x: ArrayLike, window: int) -> AR1Fit:
    """Rolling OLS fit of ``X[s] = alpha + beta * X[s-1] + eps`` for mean reversion.

    The fit at ``t`` uses the ``window`` pairs ``(x[s-1], x[s])``, ``s = t-window+1 .. t``,
    computed exactly per window (centred two-pass sums) so it matches ``np.polyfit``.
    ``resid`` is the current bar's residual under the current (in-sample) fit and
    ``zscore = resid / s`` with ``s = sqrt(SSR / (window - 2))``, the regression's
    standard error, unbiased for two fitted parameters. ``zscore`` is NaN where ``s`` is 0
    up to rounding (below ``1e-10`` of the target's spread, e.g. an exact trend);
    ``half_life = -ln 2 / ln beta`` only where ``0 < beta < 1``. A window whose regressor
    is constant gives NaN everywhere.

    Warm-up: first value at index ``window`` (``window >= 3``).
    """
    window = _int_arg(window, "ar1", "window", 3)
    return AR1Fit(*_ar1_core(_series(x, "ar1"), window))


def ar1_zscore(x: ArrayLike, window: int) -> FloatArray:
    """Residual z-score of the rolling AR(1) fit; see :func:`ar1`.

    Warm-up: first value at index ``window``.
    """
    return ar1(x, window).zscore
