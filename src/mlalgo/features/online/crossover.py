"""Streaming spread and crossover state of a fast and a slow moving average, O(1) per update.

Each twin runs an ``SMAStream`` or ``EMAStream`` pair; ``kernels.crossover`` repeats exactly their
operations in the batch engine, so both engines see the same bits and a crossover sign (a
discontinuous function of the averages) cannot differ between them.
"""

from __future__ import annotations

from typing import Any

from mlalgo.features.online._base import NAN, Stream, check_int
from mlalgo.features.online.averages import EMAStream, SMAStream, _over_zero

# kernels.CROSS_TIE, repeated so the live side need not import numba; a test keeps them equal.
CROSS_TIE = 1e-10


class MASpreadStream(Stream):
    """``MA(fast) / MA(slow) - 1`` with ``ma`` ``"sma"`` or ``"ema"``, as ``kernels.ma_spread``.

    The state nests the two averages' own states under ``fast_ma`` and ``slow_ma``.
    """

    kind = "ma_spread"
    _params = ("fast", "slow", "ma")
    _fields = ()
    __slots__ = ("_fast", "_fast_ma", "_fu", "_ma", "_slow", "_slow_ma", "_su")

    def __init__(self, fast: int, slow: int, ma: str = "sma") -> None:
        owner = type(self).__name__
        self._fast = check_int(fast, owner, "fast", 1)
        self._slow = check_int(slow, owner, "slow", fast + 1)
        if ma not in ("sma", "ema"):
            raise ValueError(f"{owner}: ma must be 'sma' or 'ema', got {ma!r}")
        self._ma = ma
        make = SMAStream if ma == "sma" else EMAStream
        self._fast_ma = make(fast)
        self._slow_ma = make(slow)
        self._fu = self._fast_ma.update
        self._su = self._slow_ma.update

    @property
    def warmup(self) -> int:
        return self._slow - 1

    @property
    def initialized(self) -> bool:
        return self._slow_ma.initialized

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "fast_ma": self._fast_ma.state(),
            "slow_ma": self._slow_ma.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        if "fast_ma" not in state or "slow_ma" not in state:
            raise ValueError(f"{self.kind} state lacks fast_ma or slow_ma")
        self._fast_ma.restore(state["fast_ma"])
        self._slow_ma.restore(state["slow_ma"])

    def update(self, x: float) -> float:
        f = self._fu(x)
        s = self._su(x)
        if s != s:
            return NAN
        try:
            return f / s - 1.0
        except ZeroDivisionError:
            return _over_zero(f, s)


class MACrossStream(MASpreadStream):
    """+1 while ``MA(fast) > MA(slow)``, -1 below, 0 within ``CROSS_TIE`` (``kernels.ma_cross``)."""

    kind = "ma_cross"
    __slots__ = ()

    def update(self, x: float) -> float:
        f = self._fu(x)
        s = self._su(x)
        d = f - s
        tol = CROSS_TIE * abs(s)
        if d > tol:
            return 1.0
        if d < -tol:
            return -1.0
        return 0.0 if d == d and tol == tol else NAN
