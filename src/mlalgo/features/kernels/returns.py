"""Simple and log returns, and the realised volatility of one-bar log returns."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mlalgo.features.kernels._common import FloatArray, as_series, int_arg
from mlalgo.features.kernels.dispersion import _std_into


def log_return(x: ArrayLike, k: int = 1) -> FloatArray:
    """Log return over ``k`` bars, ``ln(x[t] / x[t - k])``; additive across horizons.

    Warm-up: first value at index ``k``.

    Examples
    --------
    >>> log_return([1.0, 2.0, 4.0, 8.0], k=2).round(6)
    array([     nan,      nan, 1.386294, 1.386294])
    """
    k = int_arg(k, "log_return", "k", 1)
    arr = as_series(x, "log_return")
    out = np.empty(arr.size)
    out[: min(k, arr.size)] = np.nan
    if arr.size > k:
        np.divide(arr[k:], arr[:-k], out=out[k:])
        np.log(out[k:], out=out[k:])
    return out


def simple_return(x: ArrayLike, k: int = 1) -> FloatArray:
    """Simple return over ``k`` bars, ``x[t] / x[t - k] - 1``: what a position held k bars earns.

    Warm-up: first value at index ``k``.

    Examples
    --------
    >>> simple_return([1.0, 2.0, 4.0, 3.0], k=1)
    array([  nan,  1.  ,  1.  , -0.25])
    """
    k = int_arg(k, "simple_return", "k", 1)
    arr = as_series(x, "simple_return")
    out = np.empty(arr.size)
    out[: min(k, arr.size)] = np.nan
    if arr.size > k:
        with np.errstate(divide="ignore", invalid="ignore"):  # after a 0 (volume): ±inf or NaN
            np.divide(arr[k:], arr[:-k], out=out[k:])
        out[k:] -= 1.0
    return out


def realised_vol(close: ArrayLike, n: int) -> FloatArray:
    """Population standard deviation of the last ``n`` one-bar log returns.

    Per-bar scale, not annualised, so it is comparable across bar frequencies only after
    the caller scales it. ``n >= 2``.

    Warm-up: first value at index ``n`` (the first return exists at index 1).
    """
    n = int_arg(n, "realised_vol", "n", 2)
    arr = as_series(close, "realised_vol")
    out = np.empty(arr.size)
    out[:1] = np.nan
    if arr.size > 1:
        returns = np.log(arr[1:] / arr[:-1])
        _std_into(returns, n, out[1:])
    return out
