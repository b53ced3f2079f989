"""Trading cost model shared by the backtest, hyper-parameter tuning and the paper broker.

Keeping a single definition means a strategy is tuned, evaluated and traded against the same
frictions, so an edge that only exists before costs cannot sneak through one of the stages.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["BPS", "CostModel"]

BPS = 1e-4
"""One basis point as a fraction."""


_RATES = ("commission_bps", "slippage_bps", "half_spread_bps", "borrow_bps")
_FRICTIONS = (*_RATES, "commission_fixed", "slippage_vol")


@dataclass(frozen=True, slots=True)
class CostModel:
    """One cost model shared by the backtest, tuning and the paper broker.

    Parameters
    ----------
    commission_bps : float
        Commission in basis points of traded notional (at the fill price), on every fill.
    slippage_bps : float
        Adverse price move in basis points on every fill: buys pay ``price * (1 + s)``,
        sells receive ``price * (1 - s)``.
    commission_fixed : float
        A fixed commission per fill, in account currency (a broker's ticket charge).
    half_spread_bps : float
        Half the bid-ask spread: a market order buys at the ask and sells at the bid, so it adds
        to the adverse move of every fill like slippage.
    slippage_vol : float
        Extra adverse move as a multiple of the bar's volatility (standard deviation of the
        last ``vol_window`` close-to-close log returns known when the order fills): fills cost
        more in turbulent markets, as they do. 0 during the warm-up.
    vol_window : int
        Bars in that volatility estimate.
    borrow_bps : float
        Annual cost of borrowing to hold a short, in basis points of the short's value at each
        close, charged per bar (``borrow_bps / periods_per_year``).
    """

    commission_bps: float = 1.0
    slippage_bps: float = 2.0
    commission_fixed: float = 0.0
    half_spread_bps: float = 0.0
    slippage_vol: float = 0.0
    vol_window: int = 20
    borrow_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in _FRICTIONS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"CostModel: {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"CostModel: {name} must be finite and >= 0 (got {value!r}); "
                    "costs are frictions, pass 0 to switch them off"
                )
        if isinstance(self.vol_window, bool) or not isinstance(self.vol_window, int):
            raise ValueError(f"CostModel: vol_window must be an integer (got {self.vol_window!r})")
        if self.vol_window < 2:
            raise ValueError(f"CostModel: vol_window must be >= 2 (got {self.vol_window})")

    @property
    def commission_rate(self) -> float:
        """Commission as a fraction of traded notional."""
        return self.commission_bps * BPS

    @property
    def slippage_rate(self) -> float:
        """The fixed adverse move of a fill (slippage plus half spread), as a fraction."""
        return (self.slippage_bps + self.half_spread_bps) * BPS

    def borrow_rate(self, periods_per_year: float) -> float:
        """Borrow cost per bar as a fraction of the short's value."""
        return self.borrow_bps * BPS / periods_per_year

    def adverse_rates(self, close: np.ndarray, fill_at_close: bool) -> np.ndarray:
        """The adverse move of a fill at each bar: the fixed part plus ``slippage_vol`` times
        the volatility known when that bar's order fills (through the previous close for a
        fill at the open, through this close for a fill at the close)."""
        n = close.shape[0]
        rates = np.full(n, self.slippage_rate)
        if self.slippage_vol == 0.0 or n < 2:
            return rates
        r = np.diff(np.log(close))
        w = self.vol_window
        vol = np.zeros(n)  # vol[t]: std of the w returns ending at close t
        if len(r) >= w:
            windows = np.lib.stride_tricks.sliding_window_view(r, w)
            vol[w:] = windows.std(axis=1, ddof=1)
        known = vol if fill_at_close else np.r_[0.0, vol[:-1]]
        return rates + self.slippage_vol * known

    def scaled(self, factor: float) -> CostModel:
        """Return a model with every friction multiplied by ``factor``.

        Used for cost stress tests: an edge that survives ``scaled(2.0)`` is not a cost artefact.
        """
        if not math.isfinite(factor) or factor < 0:
            raise ValueError(
                f"CostModel.scaled: factor must be finite and >= 0 (got {factor!r}); "
                "use e.g. 2.0 to double costs or 0.0 to remove them"
            )
        values = {name: getattr(self, name) * factor for name in _FRICTIONS}
        return CostModel(**values, vol_window=self.vol_window)
