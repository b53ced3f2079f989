"""Streaming Wilder ATR from high, low and close: the first twin that reads several bar columns.

``update`` takes the tuple ``(high, low, close)`` (the feature's ``columns``, in that order; the
engine passes it). The operations are ``kernels.atr``'s, in its order, so both engines give the
same bits: the true range with TA-Lib's comparisons, a sequential seed sum, then
``avg = keep * avg + take * tr``.
"""

from __future__ import annotations

from mlalgo.features.online._base import NAN, Stream, check_int


class ATRStream(Stream):
    """Wilder's average true range, divided by close when ``normalize`` (TA-Lib's NATR / 100)."""

    kind = "atr"
    _params = ("n", "normalize")
    _fields = ("t", "prev", "avg")
    __slots__ = ("_avg", "_keep", "_n", "_normalize", "_prev", "_t", "_take")

    def __init__(self, n: int = 14, normalize: bool = True) -> None:
        self._n = check_int(n, type(self).__name__, "n", 1)
        self._normalize = bool(normalize)
        self._keep = (n - 1.0) / n
        self._take = 1.0 / n
        self._t = 0
        self._prev = 0.0  # the previous close
        self._avg = 0.0  # the seed sum of true ranges until warm, Wilder's average after

    @property
    def warmup(self) -> int:
        return self._n

    def update(self, hlc: tuple[float, float, float]) -> float:  # type: ignore[override]
        high, low, close = hlc
        prev = self._prev
        self._prev = close
        t = self._t
        self._t = t + 1
        if t == 0:
            return NAN
        tr = high - low
        gap = abs(high - prev)
        if gap > tr:
            tr = gap
        gap = abs(low - prev)
        if gap > tr:
            tr = gap
        n = self._n
        if t < n:
            self._avg += tr
            return NAN
        avg = self._avg
        avg = self._avg = (avg + tr) / n if t == n else self._keep * avg + self._take * tr
        return avg / close if self._normalize else avg
