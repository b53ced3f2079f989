"""What every kernel module shares: the numba options and cheap argument checks.

The checks run on every call, so the common case (a contiguous float64 array and a plain int)
costs a few attribute reads; anything else is converted once, or rejected with a message that
names the kernel, the argument and what was expected.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Every numba core: compiled once per signature and cached on disk; ``error_model="numpy"``
# lets a division by zero give inf/NaN instead of a per-division Python-style check, which
# would also stop LLVM from vectorising the elementwise loops. ``fastmath`` stays off: the
# kernels rely on IEEE rounding (exact re-sums, NaN propagation, TA-Lib agreement).
jit = njit(cache=True, nogil=True, error_model="numpy")


def as_series(x: ArrayLike, func: str) -> FloatArray:
    """``x`` as a contiguous 1-D float64 array; one that already is one is returned as is.

    Kernels only read their input, so no copy is needed to keep the caller's array intact.
    """
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 1 and x.flags.c_contiguous:
        return x
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{func}: x must be a 1-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def int_arg(value: object, func: str, name: str, minimum: int) -> int:
    """A window or lag: an int (or numpy integer, not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{func}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_arg(value: object, func: str, name: str) -> float:
    """A scale such as a band width: a finite real number above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{func}: {name} must be a positive finite number, got {value!r}")
    return float(value)
