"""Streaming RSI and k-bar log and simple returns: a recursion or one ring lookup, O(1)."""

from __future__ import annotations

from math import log

from mlalgo.features.online._base import NAN, Stream, check_int
from mlalgo.features.online.averages import _over_zero


class RSIStream(Stream):
    """Wilder's RSI with TA-Lib's seeding and TA-Lib's operation order, as ``kernels.rsi``.

    The recursion contracts (each step keeps ``(n-1)/n`` of the last average), so rounding never
    accumulates. A flat start (no gain and no loss yet) reads 50, neutral, as in the batch kernel.
    """

    kind = "rsi"
    _params = ("n",)
    _fields = ("t", "prev", "gain", "loss")
    __slots__ = ("_gain", "_loss", "_n", "_prev", "_t")

    def __init__(self, n: int = 14) -> None:
        self._n = check_int(n, type(self).__name__, "n", 1)
        self._t = 0
        self._prev = 0.0
        self._gain = 0.0  # sum of gains until warm, Wilder's average after
        self._loss = 0.0

    @property
    def warmup(self) -> int:
        return self._n

    def update(self, x: float) -> float:
        t = self._t
        self._t = t + 1
        d = x - self._prev
        self._prev = x
        if t == 0:
            return NAN
        n = self._n
        gain = self._gain
        loss = self._loss
        if t > n:
            gain *= n - 1
            loss *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        if t < n:
            self._gain = gain
            self._loss = loss
            return NAN
        gain /= n
        loss /= n
        self._gain = gain
        self._loss = loss
        total = gain + loss
        return 50.0 if total == 0.0 else 100.0 * (gain / total)


class LogReturnStream(Stream):
    """``ln(x[t] / x[t-k])``; inputs must be positive, as for any log return."""

    kind = "log_return"
    _params = ("k",)
    _fields = ("t", "i", "buf")
    __slots__ = ("_buf", "_i", "_k", "_t")

    def __init__(self, k: int = 1) -> None:
        self._k = check_int(k, type(self).__name__, "k", 1)
        self._t = 0
        self._i = 0  # ring position of x[t-k], t mod k
        self._buf = [0.0] * k

    @property
    def warmup(self) -> int:
        return self._k

    def update(self, x: float) -> float:
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self._k else i
        t = self._t
        self._t = t + 1
        return log(x / old) if t >= self._k else NAN


class SimpleReturnStream(LogReturnStream):
    """``x[t] / x[t-k] - 1``, as ``kernels.simple_return`` (``±inf``/NaN after a zero, as numpy)."""

    kind = "return"
    __slots__ = ()

    def update(self, x: float) -> float:
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self._k else i
        t = self._t
        self._t = t + 1
        if t < self._k:
            return NAN
        try:
            return x / old - 1.0
        except ZeroDivisionError:
            return _over_zero(x, old)
