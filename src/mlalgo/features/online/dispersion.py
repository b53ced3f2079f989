"""Streaming rolling std, z-score, Bollinger %b and realised volatility: exact integer sums, O(1).

The z-score and %b use the same exact moments as the std: ``n q - s1`` is ``n (x - mean)`` and
``n s2 - s1^2`` is ``n^2 var`` (in fixed point), so a window is flat exactly when the latter is 0,
the same windows where the batch kernel's centred sums give 0.
"""

from __future__ import annotations

from math import isfinite, log, sqrt
from typing import ClassVar

from mlalgo.features.online._base import NAN, Stream, check_int
from mlalgo.features.online._exact import SCALE


class StdStream(Stream):
    """Population (``ddof=0``) standard deviation of the last ``n`` values, as ``rolling_std``.

    ``n * sum(q^2) - sum(q)^2`` of the fixed-point values ``q`` is ``n^2 var`` exactly (see
    :mod:`._exact`), so the only roundings are its conversion to float, one scaling and the
    square root, and a constant window gives exactly 0, as in the batch kernel. Inputs must stay
    below about 1e100 in magnitude (the integers then still convert to floats).
    """

    kind = "std"
    _params = ("n",)
    _fields = ("t", "i", "buf", "s1", "s2")
    __slots__ = ("_buf", "_i", "_inv", "_n", "_s1", "_s2", "_t")

    def __init__(self, n: int) -> None:
        self._n = check_int(n, type(self).__name__, "n", 2)
        self._inv = 1.0 / (n * n * SCALE * SCALE)
        self._t = 0
        self._i = 0  # ring position of the oldest value, t mod n
        self._buf = [0] * n  # fixed-point values
        self._s1 = 0  # sum(q) over the window
        self._s2 = 0  # sum(q^2)

    @property
    def warmup(self) -> int:
        return self._n - 1

    def _slide(self, q: int) -> bool:
        """Move the fixed-point value ``q`` into the window; whether the window is full."""
        n = self._n
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = q
        i += 1
        self._i = 0 if i == n else i
        t = self._t
        self._t = t + 1
        if t >= n:
            self._s1 += q - old
            self._s2 += q * q - old * old
            return True
        self._s1 += q
        self._s2 += q * q
        return i == n

    def update(self, x: float) -> float:
        if not self._slide(int(x * SCALE)):
            return NAN
        s1 = self._s1
        return sqrt((self._n * self._s2 - s1 * s1) * self._inv)


class ZScoreStream(StdStream):
    """``(x - SMA) / std`` over the last ``n`` values, as ``kernels.zscore``; NaN on a flat window.

    From exact integers: one rounding each for the deviation and the variance, then the square
    root and the division.
    """

    kind = "zscore"
    _offset: ClassVar[float] = 0.0
    __slots__ = ("_width",)

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self._width = 1.0

    def update(self, x: float) -> float:
        q = int(x * SCALE)
        if not self._slide(q):
            return NAN
        n = self._n
        s1 = self._s1
        var = n * self._s2 - s1 * s1  # n^2 var, in units of SCALE^2
        if not var:
            return NAN
        return float(n * q - s1) / (self._width * sqrt(var)) + self._offset


class BollingerBStream(ZScoreStream):
    """Bollinger %b ``z / (2k) + 0.5``, as ``kernels.bollinger_b``; NaN on a flat window."""

    kind = "bollinger_b"
    _params = ("n", "k")
    _offset = 0.5
    __slots__ = ("_k",)

    def __init__(self, n: int, k: float = 2.0) -> None:
        super().__init__(n)
        if isinstance(k, bool) or not isinstance(k, int | float) or not (isfinite(k) and k > 0):
            raise ValueError(f"BollingerBStream: k must be a positive finite number, got {k!r}")
        self._k = float(k)
        self._width = 2.0 * self._k


class VolatilityStream(StdStream):
    """Population std of the last ``n`` one-bar log returns (``kernels.realised_vol``)."""

    kind = "volatility"
    _fields = (*StdStream._fields, "prev")
    __slots__ = ("_prev",)

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self._prev: float | None = None

    @property
    def warmup(self) -> int:
        return self._n

    @property
    def initialized(self) -> bool:
        return self._t >= self._n  # _t counts returns, one fewer than prices

    def update(self, x: float) -> float:
        prev = self._prev
        self._prev = x
        if prev is None:
            return NAN
        # StdStream.update on the log return, inlined: this twin is on the live hot path.
        q = int(log(x / prev) * SCALE)
        n = self._n
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = q
        i += 1
        self._i = 0 if i == n else i
        t = self._t
        self._t = t + 1
        if t >= n:
            s1 = self._s1 = self._s1 + (q - old)
            s2 = self._s2 = self._s2 + (q * q - old * old)
        else:
            s1 = self._s1 = self._s1 + q
            s2 = self._s2 = self._s2 + q * q
            if i < n:
                return NAN
        return sqrt((n * s2 - s1 * s1) * self._inv)
