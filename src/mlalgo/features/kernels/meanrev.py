"""Rolling AR(1) fits for mean reversion: slope, residual z-score and half-life, O(1) per bar.

Motivation
----------
The OLS fit of ``x[s] = alpha + beta * x[s-1]`` over the last ``window`` pairs needs five sums
(of the regressor, the target, their squares and their product). Recomputing them per window is
O(window) per bar; sliding them (add the new pair, subtract the old) is O(1) but cancels
catastrophically on prices, whose spread is a tiny fraction of their level.

The sums here are built as in :mod:`.dispersion`: windows in blocks of ``window`` consecutive end
pairs, centred on the regressor of the block's first end pair (a value of every window in the
block), each window's sums being a suffix summed backwards up to that anchor plus a prefix summed
forwards after it, so nothing is ever subtracted back out.

The centred moments still subtract, ``sxx = Suu - Su^2 / window``, and so does the residual sum
of squares, ``ssr = syy - beta * sxy``, which is small when the fit is tight. So each window
also bounds its own rounding error. Each sum adds at most ``window`` rounded terms, so to first
order ``sxx``, ``sxy`` and ``syy`` are within ``E = (6 window + 16) u (Suu + Svv)``, with
``u = 2^-53``; then ``beta`` is within ``E g / sxx``, ``ssr`` within ``E g^2`` and the residual
within ``E g / sqrt(sxx)``, with ``g = 1 + |beta|``. Where the resulting error of ``beta`` or of
the z-score could exceed ``_FAST_TOL`` (an almost exact fit, a near-constant window, a window just
after a jump, a NaN) the window is recomputed by the exact three-pass formula. On market prices
that is rare, so the cost stays O(1) per bar: a million-bar random walk needs no recomputation
at all with ``window`` 60 or 500.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg, jit

# Unit roundoff of float64.
_U = 2.0**-53
# The z-score is NaN where the residual scale is below this fraction of the target's spread: an
# exact fit, whose residuals are rounding noise.
_S_REL_TOL = 1e-10
# A window's O(1) value is used only where the bound on its rounding error is within this
# fraction of beta's and the z-score's magnitude (plus the same amount absolute for the z-score).
_FAST_TOL = 1e-8

# Pairs per sweep (whole blocks of ``window``): the scratch stays in cache and the per-sweep
# set-up is paid once per thousand bars, not once per block.
_SPAN = 1024

_LN2 = math.log(2.0)


@jit
def _span_sums(
    x: FloatArray, w: int, a: int, k: int, sums: tuple[FloatArray, ...], centre: FloatArray
) -> None:
    """The five centred sums of the windows ending at pairs ``a .. a+k-1``.

    Pair ``s`` is ``(x[s-1], x[s])``. Anchors are the pairs ``a, a+w, ...``; the windows ending
    at an anchor or the ``w - 1`` pairs after it are centred on ``c``, the anchor's regressor,
    which ``centre[j]`` receives. With ``u = x[s-1] - c`` and ``v = x[s] - c``, ``sums[0..4][j]``
    receive the sums of ``u, v, u^2, uv, v^2`` over the window ending at pair ``a + j``.
    """
    su, sv, suu, suv, svv = sums
    blocks = -(-k // w)
    vals = x[a - w : a - w + 1 + blocks * w]  # pair i of the sweep is (vals[i], vals[i + 1])
    qu = qv = quu = quv = qvv = c = 0.0
    left = 0
    for i in range(blocks * w - 1, -1, -1):  # suffix sums up to each anchor, backwards
        if left == 0:
            c = vals[i]
            qu = qv = quu = quv = qvv = 0.0
            left = w
        du = vals[i] - c
        dv = vals[i + 1] - c
        qu += du
        qv += dv
        quu += du * du
        quv += du * dv
        qvv += dv * dv
        su[i] = qu
        sv[i] = qv
        suu[i] = quu
        suv[i] = quv
        svv[i] = qvv
        left -= 1
    f = x[a - 1 : a + k]  # pair j of the windows' ends is (f[j], f[j + 1])
    pu = pv = puu = puv = pvv = 0.0
    left = 0
    for j in range(k):  # plus the prefix sums of the pairs after each anchor
        if left == 0:
            c = f[j]
            pu = pv = puu = puv = pvv = 0.0
            left = w
        else:
            du = f[j] - c
            dv = f[j + 1] - c
            pu += du
            pv += dv
            puu += du * du
            puv += du * dv
            pvv += dv * dv
        su[j] += pu
        sv[j] += pv
        suu[j] += puu
        suv[j] += puv
        svv[j] += pvv
        centre[j] = c
        left -= 1


@jit
def _exact_fit(x: FloatArray, w: int, t: int) -> tuple[float, float, float, float]:
    """``(alpha, beta, resid, zscore)`` of the window ending at ``t`` by centred three-pass sums."""
    nan = np.nan
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
    sxx = sxy = syy = 0.0
    for s in range(lo, t + 1):
        dx = (x[s - 1] - cx) - mx
        dy = (x[s] - cy) - my
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    if sxx == 0.0:  # a constant regressor: no fit (a NaN flows through as NaN)
        return nan, nan, nan, nan
    b = sxy / sxx
    ssr = 0.0
    e = 0.0
    for s in range(lo, t + 1):
        e = ((x[s] - cy) - my) - b * ((x[s - 1] - cx) - mx)
        ssr += e * e
    sd = math.sqrt(ssr / (w - 2))
    z = e / sd if sd > _S_REL_TOL * math.sqrt(syy / w) else nan
    return (cy + my) - b * (cx + mx), b, e, z


@jit
def _ar1_into(
    x: FloatArray,
    w: int,
    alpha: FloatArray,
    beta: FloatArray,
    resid: FloatArray,
    zscore: FloatArray,
    slope: FloatArray,
) -> None:
    """Fill the four fit arrays, and ``slope`` with beta where ``0 < beta < 1`` (else NaN)."""
    m = x.size
    for arr in (alpha, beta, resid, zscore, slope):
        arr[: min(w, m)] = np.nan
    inv = 1.0 / w
    dof = 1.0 / (w - 2)
    thr = _S_REL_TOL * _S_REL_TOL * (w - 2) * inv  # sd <= tol * spread  <=>  ssr <= thr * syy
    kerr = (6 * w + 16) * _U  # bounds the rounding error of sxx, sxy, syy in units of Suu + Svv
    span = w * max(1, _SPAN // w)
    sums = (np.empty(span), np.empty(span), np.empty(span), np.empty(span), np.empty(span))
    su, sv, suu, suv, svv = sums
    centre = np.empty(span)
    slow = np.empty(span, dtype=np.bool_)
    for a in range(w, m, span):
        k = min(span, m - a)
        _span_sums(x, w, a, k, sums, centre)
        cur = x[a : a + k]
        prev = x[a - 1 : a - 1 + k]
        al = alpha[a : a + k]
        be = beta[a : a + k]
        re = resid[a : a + k]
        zs = zscore[a : a + k]
        sl = slope[a : a + k]
        for j in range(k):  # branch-free, so LLVM vectorises it
            c = centre[j]
            mu = su[j] * inv
            mv = sv[j] * inv
            sxx = suu[j] - su[j] * mu
            sxy = suv[j] - su[j] * mv
            syy = svv[j] - sv[j] * mv
            b = sxy / sxx
            ssr = syy - b * sxy
            e = ((cur[j] - c) - mv) - b * ((prev[j] - c) - mu)
            z = e / math.sqrt(ssr * dof)
            # First-order worst-case error bounds (see the module notes), written as products
            # so that a zero or NaN moment fails them: beta's relative error err * g / sxx,
            # the z-score's absolute error 2 err g / (sqrt(sxx) sd) and relative error
            # err g^2 / (2 ssr), each within _FAST_TOL.
            err = kerr * (suu[j] + svv[j])
            g = 1.0 + abs(b)
            slow[j] = not (
                err < _FAST_TOL * sxx
                and err * g * g < 2.0 * _FAST_TOL * ssr
                and 2.0 * err * g < _FAST_TOL * math.sqrt(sxx * ssr * dof)
            )
            al[j] = (c + mv) - b * (c + mu)
            be[j] = b
            re[j] = e
            zs[j] = z if ssr > thr * syy else np.nan
            sl[j] = b if 0.0 < b < 1.0 else np.nan
        for j in range(k):
            if slow[j]:
                fit = _exact_fit(x, w, a + j)
                al[j], be[j], re[j], zs[j] = fit
                b = fit[1]
                sl[j] = b if 0.0 < b < 1.0 else np.nan


def _fit_arrays(x: ArrayLike, window: int) -> tuple[FloatArray, ...]:
    window = int_arg(window, "ar1", "window", 3)
    arr = as_series(x, "ar1")
    out = tuple(np.empty(arr.size) for _ in range(5))
    _ar1_into(arr, window, *out)
    return out


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

    The fit at ``t`` uses the ``window`` pairs ``(x[s-1], x[s])``, ``s = t-window+1 .. t``, in
    O(1) per bar (see the module notes), matching an exact per-window fit to about 1e-8.
    ``resid`` is the current bar's residual under the current (in-sample) fit and
    ``zscore = resid / s`` with ``s = sqrt(SSR / (window - 2))``, the regression's
    standard error, unbiased for two fitted parameters. ``zscore`` is NaN where ``s`` is 0
    up to rounding (below ``1e-10`` of the target's spread, e.g. an exact trend);
    ``half_life = -ln 2 / ln beta`` only where ``0 < beta < 1``. A window whose regressor
    is constant gives NaN everywhere.

    Warm-up: first value at index ``window`` (``window >= 3``).

    Examples
    --------
    >>> fit = ar1([4.0, 3.0, 2.5, 2.25, 2.125, 2.0625], 3)  # each bar halves the gap to 2
    >>> fit.beta[3:], fit.half_life[3:]
    (array([0.5, 0.5, 0.5]), array([1., 1., 1.]))
    >>> fit.zscore[3:]  # an exact fit has no residual scale
    array([nan, nan, nan])
    """
    alpha, beta, resid, zscore, half_life = _fit_arrays(x, window)
    np.log(half_life, out=half_life)  # the NumPy pass is SIMD; NaN (beta outside (0, 1)) stays
    np.divide(-_LN2, half_life, out=half_life)
    return AR1Fit(alpha, beta, resid, zscore, half_life)


def ar1_zscore(x: ArrayLike, window: int) -> FloatArray:
    """Residual z-score of the rolling AR(1) fit; see :func:`ar1`.

    Warm-up: first value at index ``window``.
    """
    return _fit_arrays(x, window)[3]
