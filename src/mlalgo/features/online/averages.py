"""Streaming moving averages and the distance of a price from them, O(1) per update.

The EMA is a recursion and the SMA a sliding sum that is replaced by an exact sum of its window
every ``n`` values, so both stay within a few units in the last place of the exact average
however long they run. Each ``Dist*`` twin is its average with ``_dist`` set: the same update,
returning ``x / MA - 1`` instead of ``MA``, without the cost of a second Python call per bar.
"""

from __future__ import annotations

import math
from typing import ClassVar

from mlalgo.features.online._base import NAN, Stream, check_int


def _over_zero(x: float, ma: float) -> float:
    """``x / 0.0 - 1`` as numpy computes it (±inf, or NaN for 0/0), where Python would raise."""
    if x == 0.0 or x != x:
        return NAN
    return math.copysign(math.inf, x) * math.copysign(1.0, ma)


class SMAStream(Stream):
    """Simple moving average of the last ``n`` values.

    A sliding sum drifts as rounding accumulates, so it is replaced every ``n`` values by a fresh
    sum of the window. That sum is built as the values arrive (``acc``) instead of by a loop over
    the window, so no update ever costs O(n), and the drift never spans more than ``2 n`` values.
    """

    kind = "sma"
    _dist: ClassVar[bool] = False
    _params = ("n",)
    _fields = ("t", "i", "buf", "total", "acc")
    __slots__ = ("_acc", "_buf", "_i", "_n", "_t", "_total")

    def __init__(self, n: int) -> None:
        self._n = check_int(n, type(self).__name__, "n", 1)
        self._t = 0  # values seen
        self._i = 0  # ring position of the next value, t mod n
        self._buf = [0.0] * n
        self._total = 0.0  # sum of the window
        self._acc = 0.0  # exact sum of the values since the last position-0 value

    @property
    def warmup(self) -> int:
        return self._n - 1

    def update(self, x: float) -> float:
        n = self._n
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        acc = self._acc + x if i else x
        self._acc = acc
        t = self._t + 1
        self._t = t
        if i == n - 1:
            self._i = 0
            total = self._total = acc
        else:
            self._i = i + 1
            if t <= n:
                return NAN
            total = self._total = self._total + (x - old)
        ma = total / n
        if not self._dist:
            return ma
        try:
            return x / ma - 1.0
        except ZeroDivisionError:
            return _over_zero(x, ma)


class EMAStream(Stream):
    """Exponential moving average seeded, as TA-Lib and ``kernels.ema`` do, with the first SMA."""

    kind = "ema"
    _dist: ClassVar[bool] = False
    _params = ("n",)
    _fields = ("t", "e")
    __slots__ = ("_e", "_k", "_n", "_t")

    def __init__(self, n: int) -> None:
        self._n = check_int(n, type(self).__name__, "n", 1)
        self._k = 2.0 / (n + 1.0)
        self._t = 0
        self._e = 0.0  # the running seed sum until warm, the average after

    @property
    def warmup(self) -> int:
        return self._n - 1

    def update(self, x: float) -> float:
        t = self._t
        self._t = t + 1
        n = self._n
        if t >= n:
            e = self._e
            e = self._e = (x - e) * self._k + e
        elif t == n - 1:
            e = self._e = (self._e + x) / n
        else:
            self._e += x
            return NAN
        if not self._dist:
            return e
        try:
            return x / e - 1.0
        except ZeroDivisionError:
            return _over_zero(x, e)


class DistSMAStream(SMAStream):
    """``x / SMA(x, n) - 1``: how stretched price is from its mean, scale-free."""

    kind = "dist_sma"
    _dist = True
    __slots__ = ()


class DistEMAStream(EMAStream):
    """``x / EMA(x, n) - 1`` with TA-Lib's seeding."""

    kind = "dist_ema"
    _dist = True
    __slots__ = ()
