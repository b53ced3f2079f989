"""Rolling dispersion: population standard deviation and the Bollinger %b built on it.

Motivation
----------
A rolling variance from running sums of ``x`` and ``x^2`` (TA-Lib's ``VAR``) is O(1) per bar but
loses digits in proportion to ``mean^2 / variance``: on a price near 1e4 that moves by 1e-3, the
two sums agree to 14 digits and their difference is mostly noise. A two-pass variance per window
is exact but O(window) per bar.

These kernels get both. The windows are taken in blocks of ``n`` consecutive end points; the
block's first end point ``a`` is its anchor, a bar of every window in the block, and all its
sums are of ``d = x - x[a]``, so they never dwarf the variance. The window ending at ``a + j``
is the bars ``a-n+1+j .. a`` (a suffix of the ``n`` bars up to the anchor, summed backwards)
plus ``a+1 .. a+j`` (a prefix of the bars after it, summed forwards): every window sum is a
plain sum of its own centred values and nothing is ever subtracted back out. The rounding error
is that of summing the window once, each bar is visited twice (once per sum direction) plus one
vectorised square root, and a NaN only reaches the windows that contain it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg, jit, positive_arg

# Bars per sweep of the short-window path (whole blocks of ``n``), and per square-root pass: the
# scratch arrays stay in the L1/L2 cache and the SIMD loops run long enough to pay off.
_SPAN = 1024
# Windows at least this long take the one-sweep-per-block path; both give the same bits.
_LONG = 16


@jit
def _suffix_sums(vals: FloatArray, n: int, s1: FloatArray, s2: FloatArray) -> None:
    """Per block of ``n`` values, sums of ``d`` and ``d^2`` from each value to the block's end.

    ``d`` is the distance to the block's last value, its anchor.
    """
    q1 = q2 = c = 0.0
    left = 0
    for i in range(vals.size - 1, -1, -1):
        v = vals[i]
        if left == 0:  # a new block, seen from its anchor
            c = v
            q1 = q2 = 0.0
            left = n
        d = v - c
        q1 += d
        q2 += d * d
        s1[i] = q1
        s2[i] = q2
        left -= 1


@jit
def _sqrt_scaled(v: FloatArray, scale: float) -> None:
    """``v <- sqrt(max(v, 0)) * scale`` in place, NaN kept; no loop-carried state, so it is SIMD."""
    for j in range(v.size):
        u = v[j]
        v[j] = math.sqrt(0.0 if u < 0.0 else u) * scale


@jit
def _std_short_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """Short windows: many blocks per sweep, so the per-block cost does not dominate."""
    m = x.size
    out[: min(n - 1, m)] = np.nan
    span = n * max(1, _SPAN // n)
    s1 = np.empty(span)
    s2 = np.empty(span)
    fn = float(n)
    for a in range(n - 1, m, span):  # windows ending at a .. a+k-1; anchors at a, a+n, ...
        k = min(span, m - a)
        blocks = -(-k // n)
        _suffix_sums(x[a - n + 1 : a - n + 1 + blocks * n], n, s1, s2)
        f = x[a : a + k]
        o = out[a : a + k]
        p1 = p2 = c = 0.0
        left = 0
        for j in range(k):  # add the prefix sums of the bars after each anchor
            v = f[j]
            if left == 0:
                c = v
                p1 = p2 = 0.0
                left = n
            d = v - c
            p1 += d
            p2 += d * d
            s = s1[j] + p1
            o[j] = fn * (s2[j] + p2) - s * s  # n^2 * variance
            left -= 1
        _sqrt_scaled(o, 1.0 / n)


@jit
def _std_long_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """Long windows: one sweep per block sums its following bars both ways at once.

    The same sums in the same order as :func:`_std_short_into` (so the same bits), but the
    forward prefix sums of this block and the backward suffix sums of the next one share a loop.
    """
    m = x.size
    out[: min(n - 1, m)] = np.nan
    if m < n:
        return
    fn = float(n)
    s1 = np.empty(n)  # this block's suffix sums
    s2 = np.empty(n)
    t1 = np.empty(n)  # the next block's, being built
    t2 = np.empty(n)
    _suffix_sums(x[:n], n, s1, s2)
    c = x[n - 1]
    done = n - 1
    for a in range(n - 1, m, n):
        k = min(n, m - a)
        o = out[a : a + k]
        o[0] = fn * s2[0] - s1[0] * s1[0]
        if a + n < m:
            nxt = x[a + 1 : a + n + 1]  # the bars after this anchor, up to the next anchor
            cn = nxt[n - 1]
            p1 = p2 = q1 = q2 = 0.0
            for j in range(1, n):
                d = nxt[j - 1] - c  # forward: bar a + j, centred on this anchor
                p1 += d
                p2 += d * d
                s = s1[j] + p1
                o[j] = fn * (s2[j] + p2) - s * s
                e = nxt[n - j] - cn  # backward: bar a + n + 1 - j, centred on the next one
                q1 += e
                q2 += e * e
                t1[n - j] = q1
                t2[n - j] = q2
            e = nxt[0] - cn
            t1[0] = q1 + e
            t2[0] = q2 + e * e
            s1, t1 = t1, s1
            s2, t2 = t2, s2
            c = cn
        else:
            f = x[a + 1 : a + k]
            p1 = p2 = 0.0
            for j in range(1, k):
                d = f[j - 1] - c
                p1 += d
                p2 += d * d
                s = s1[j] + p1
                o[j] = fn * (s2[j] + p2) - s * s
        if a + k - done >= _SPAN or a + k == m:
            _sqrt_scaled(out[done : a + k], 1.0 / n)
            done = a + k


@jit
def _std_into(x: FloatArray, n: int, out: FloatArray) -> None:
    if n < _LONG:
        _std_short_into(x, n, out)
    else:
        _std_long_into(x, n, out)


@jit
def _band_into(x: FloatArray, n: int, width: float, offset: float, out: FloatArray) -> None:
    """``(x - mean) / (width * std) + offset`` per window, NaN where the window is flat.

    %b is ``width = 2k, offset = 0.5`` and the z-score ``width = 1, offset = 0`` (both exact:
    scaling by 1 and adding 0 change no bits), so the two share one centred, O(1) pass.
    """
    m = x.size
    out[: min(n - 1, m)] = np.nan
    span = n * max(1, _SPAN // n)
    s1 = np.empty(span)
    s2 = np.empty(span)
    fn = float(n)
    for a in range(n - 1, m, span):
        k = min(span, m - a)
        blocks = -(-k // n)
        _suffix_sums(x[a - n + 1 : a - n + 1 + blocks * n], n, s1, s2)
        f = x[a : a + k]
        o = out[a : a + k]
        p1 = p2 = c = 0.0
        left = 0
        for j in range(k):
            v = f[j]
            if left == 0:
                c = v
                p1 = p2 = 0.0
                left = n
            d = v - c
            p1 += d
            p2 += d * d
            s = s1[j] + p1
            var = fn * (s2[j] + p2) - s * s  # n^2 * variance
            dev = fn * d - s  # n * (x - mean), without cancelling the price level
            o[j] = dev / (width * math.sqrt(var)) + offset if var > 0.0 else np.nan
            left -= 1


def rolling_std(x: ArrayLike, n: int) -> FloatArray:
    """Population (``ddof=0``) standard deviation of the last ``n`` values, as TA-Lib's ``STDDEV``.

    O(1) per bar and as accurate as a two-pass computation per window (see the module notes),
    where TA-Lib's running sums of squares lose digits on high, quiet prices. ``n >= 2``: a
    one-value spread is identically zero. A window holding a NaN is NaN; later ones are not.

    Warm-up: first value at index ``n - 1``.

    Examples
    --------
    >>> rolling_std([1.0, 3.0, 5.0, 5.0], 2)
    array([nan,  1.,  1.,  0.])
    """
    n = int_arg(n, "rolling_std", "n", 2)
    arr = as_series(x, "rolling_std")
    out = np.empty(arr.size)
    _std_into(arr, n, out)
    return out


def bollinger_b(close: ArrayLike, n: int, k: float = 2.0) -> FloatArray:
    """Bollinger %b: where ``close`` sits in its band, ``(close - lower) / (upper - lower)``.

    The bands are ``sma(close, n) -/+ k * rolling_std(close, n)`` (TA-Lib's ``BBANDS`` with
    ``matype=0``), so %b is 0 on the lower band, 1 on the upper band, and scale-free, which
    a raw band level is not. NaN where the standard deviation is 0: a flat window has no band.

    Warm-up: first value at index ``n - 1`` (``n >= 2``).

    Examples
    --------
    >>> bollinger_b([1.0, 3.0, 2.0, 2.0], 2, k=1.0)  # on the upper band, the lower, then flat
    array([nan,  1.,  0., nan])
    """
    n = int_arg(n, "bollinger_b", "n", 2)
    width = 2.0 * positive_arg(k, "bollinger_b", "k")
    arr = as_series(close, "bollinger_b")
    out = np.empty(arr.size)
    _band_into(arr, n, width, 0.5, out)
    return out


def zscore(x: ArrayLike, n: int) -> FloatArray:
    """Rolling z-score ``(x - sma(x, n)) / rolling_std(x, n)`` (population std), scale-free.

    Computed from the same centred sums as :func:`bollinger_b` (``%b = z / (2k) + 0.5``), so the
    deviation never cancels against the price level. NaN where the window is flat (std 0).
    ``n >= 2``.

    Warm-up: first value at index ``n - 1``.

    Examples
    --------
    >>> zscore([1.0, 3.0, 2.0, 2.0, 5.0], 2)  # two values are always one std either side
    array([nan,  1., -1., nan,  1.])
    """
    n = int_arg(n, "zscore", "n", 2)
    arr = as_series(x, "zscore")
    out = np.empty(arr.size)
    _band_into(arr, n, 1.0, 0.0, out)
    return out
