"""One bar as plain data, for streaming paths that must not import pandas (the live side)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    open_ms: int  # bar open time, epoch milliseconds UTC
    open: float
    high: float
    low: float
    close: float
    volume: float

    def problems(self) -> list[str]:
        """The bar-schema rules of :mod:`mlalgo.bars`, for one bar; empty when the bar is good."""
        prices = (self.open, self.high, self.low, self.close)
        if not all(math.isfinite(v) for v in (*prices, self.volume)):
            return ["missing or non-finite values"]
        out = []
        if min(prices) <= 0:
            out.append("non-positive prices")
        if self.high < self.low:
            out.append("high < low")
        if self.high < max(self.open, self.close):
            out.append("high below open or close")
        if self.low > min(self.open, self.close):
            out.append("low above open or close")
        if self.volume < 0:
            out.append("negative volume")
        return out
