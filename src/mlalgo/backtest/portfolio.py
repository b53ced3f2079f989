"""Several instruments on one cash account: the array-level entry to the numba core.

Every instrument's target is a fraction of the whole account's equity (or units, with
``sizing="units"``), so instruments compete for the same cash and the account-level limits
(gross leverage, drawdown kill switch, daily loss) see the whole book. The rules are in
:mod:`mlalgo.backtest.core`; this module checks the inputs and names the outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from mlalgo.backtest.core import SIZING_CODES, portfolio_core
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import DEFAULT_COST, FILL_CLOSE, FILL_NEXT_OPEN, Trades
from mlalgo.backtest.engine import trades_from_rows as _trades

__all__ = ["Fills", "PortfolioSim", "RiskLimits", "simulate_portfolio"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_FRACTIONS = ("stop_loss", "take_profit", "trailing_stop", "max_drawdown", "max_daily_loss")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Exits and account limits; None switches one off.

    ``stop_loss``, ``take_profit`` and ``trailing_stop`` are fractions of the trade's entry
    price (of its best price since entry for the trailing stop), checked against every bar's
    high and low. ``max_drawdown`` and ``max_daily_loss`` are fractions of equity that flatten
    the account (for good, or for the rest of the day). ``max_position`` caps one instrument's
    exposure and ``max_leverage`` the gross exposure, both as multiples of equity.
    """

    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    max_drawdown: float | None = None
    max_daily_loss: float | None = None
    max_position: float | None = None
    max_leverage: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"RiskLimits: {f.name} must be a number or None (got {value!r})")
            upper = 1.0 if f.name in _FRACTIONS and f.name != "take_profit" else math.inf
            if not 0.0 < value < upper:
                rng = "between 0 and 1 (exclusive)" if upper == 1.0 else "> 0"
                raise ValueError(
                    f"RiskLimits: {f.name} must be {rng} (got {value!r}); use None to switch it off"
                )


NO_LIMITS = RiskLimits()


@dataclass(frozen=True, slots=True, eq=False)
class Fills:
    """One row per fill, in time order; ``reason`` indexes ``core.EXIT_REASONS``."""

    bar: IntArray
    asset: IntArray
    units: FloatArray  # signed units traded (+buy, -sell)
    price: FloatArray  # including slippage
    commission: FloatArray
    reason: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.bar.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class PortfolioSim:
    """Account state at each close (length n) and per instrument (n, m)."""

    equity: FloatArray
    cash: FloatArray
    units: FloatArray  # (n, m)
    fills: Fills
    trades: Trades
    killed_at: int  # bar whose close tripped the drawdown kill switch, -1 if never


def _grid(name: str, values: npt.ArrayLike, shape: tuple[int, ...] | None) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"simulate_portfolio: {name} must be (bars, instruments) (got shape {arr.shape})"
        )
    if shape is not None and arr.shape != shape:
        raise ValueError(
            f"simulate_portfolio: {name} has shape {arr.shape} but open has {shape}; "
            "pass one value per bar and instrument"
        )
    return np.ascontiguousarray(arr)


def _check_prices(o: FloatArray, h: FloatArray, lo: FloatArray, c: FloatArray) -> None:
    missing = np.isnan(o)
    for name, arr in (("high", h), ("low", lo), ("close", c)):
        if not np.array_equal(np.isnan(arr), missing):
            t, i = np.argwhere(np.isnan(arr) != missing)[0]
            raise ValueError(
                f"simulate_portfolio: bar {t} of instrument {i} has a missing {name} but not a "
                "missing open (or the reverse); a bar is either whole or absent (all NaN)"
            )
    present = ~missing
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        bad = present & ~(np.isfinite(arr) & (arr > 0.0))
        if bad.any():
            t, i = np.argwhere(bad)[0]
            raise ValueError(
                f"simulate_portfolio: {name} at bar {t} of instrument {i} is {arr[t, i]}; "
                "prices must be finite and > 0 (drop or repair bad bars first)"
            )
    inverted = present & ((h < np.maximum(o, c)) | (lo > np.minimum(o, c)))
    if inverted.any():
        t, i = np.argwhere(inverted)[0]
        raise ValueError(
            f"simulate_portfolio: bar {t} of instrument {i} has a high below its open or close "
            "or a low above them; stops read the bar's range, so it must contain both"
        )


def simulate_portfolio(
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    day: npt.ArrayLike | None = None,
    cash: float = 1.0,
    cost: CostModel = DEFAULT_COST,
    fill: str = FILL_NEXT_OPEN,
    sizing: str = "fraction",
    unit_size: float = 1.0,
    min_trade: float = 0.0,
    limits: RiskLimits = NO_LIMITS,
    periods_per_year: float = 252,
) -> PortfolioSim:
    """Trade ``target`` (bars x instruments; NaN keeps the position) on one cash account.

    ``day`` labels each bar with its trading day (any integers, non-decreasing) for
    ``max_daily_loss``; by default every bar is its own day, which is right for daily bars.
    Everything else is documented in :mod:`mlalgo.backtest.core`.
    """
    if fill not in (FILL_NEXT_OPEN, FILL_CLOSE):
        raise ValueError(f"simulate_portfolio: fill must be 'next_open' or 'close' (got {fill!r})")
    if sizing not in SIZING_CODES:
        raise ValueError(
            f"simulate_portfolio: sizing must be one of {sorted(SIZING_CODES)} (got {sizing!r})"
        )
    if not (math.isfinite(cash) and cash > 0):
        raise ValueError(f"simulate_portfolio: cash must be finite and > 0 (got {cash!r})")
    if not (math.isfinite(unit_size) and unit_size > 0):
        raise ValueError(f"simulate_portfolio: unit_size must be > 0 (got {unit_size!r})")
    if not (math.isfinite(min_trade) and min_trade >= 0):
        raise ValueError(f"simulate_portfolio: min_trade must be >= 0 (got {min_trade!r})")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(
            f"simulate_portfolio: periods_per_year must be > 0 (got {periods_per_year!r})"
        )
    o = _grid("open", open_, None)
    shape = o.shape
    h, lo, c = (_grid(k, v, shape) for k, v in (("high", high), ("low", low), ("close", close)))
    tgt = _grid("target", target, shape)
    n, m = shape
    if n == 0 or m == 0:
        raise ValueError("simulate_portfolio: got no bars; pass at least one bar")
    _check_prices(o, h, lo, c)
    if np.isinf(tgt).any():
        t, i = np.argwhere(np.isinf(tgt))[0]
        raise ValueError(
            f"simulate_portfolio: target at bar {t} of instrument {i} is infinite; use NaN for "
            "'no decision' and finite exposures otherwise"
        )
    days = np.arange(n, dtype=np.int64) if day is None else np.asarray(day, dtype=np.int64)
    if days.shape != (n,) or (np.diff(days) < 0).any():
        raise ValueError(
            f"simulate_portfolio: day must hold one non-decreasing label per bar ({n} bars)"
        )
    slip = np.empty(shape)
    for i in range(m):
        col = c[:, i]
        present = ~np.isnan(col)
        rates = np.full(n, cost.slippage_rate)
        rates[present] = cost.adverse_rates(col[present], fill == FILL_CLOSE)
        slip[:, i] = rates
    if float(slip.max()) >= 1.0:
        raise ValueError(
            "simulate_portfolio: the cost model's adverse move reaches 100 % of the price; "
            "slippage, half spread and volatility slippage must stay below it"
        )
    lim = limits

    def off(value: float | None, none: float) -> float:
        return none if value is None else float(value)

    equity, cash_arr, units, fills, k, trades, q, killed_at = portfolio_core(
        o,
        h,
        lo,
        c,
        tgt,
        np.ascontiguousarray(days),
        float(cash),
        cost.commission_rate,
        float(cost.commission_fixed),
        slip,
        cost.borrow_rate(periods_per_year),
        fill == FILL_CLOSE,
        SIZING_CODES[sizing],
        float(unit_size),
        off(lim.max_position, math.inf),
        off(lim.max_leverage, math.inf),
        float(min_trade),
        off(lim.stop_loss, 0.0),
        off(lim.take_profit, 0.0),
        off(lim.trailing_stop, 0.0),
        off(lim.max_drawdown, 0.0),
        off(lim.max_daily_loss, 0.0),
    )
    f = fills[:k]
    for arr in (equity, cash_arr, units):
        arr.setflags(write=False)
    return PortfolioSim(
        equity=equity,
        cash=cash_arr,
        units=units,
        fills=Fills(
            bar=_ro(f[:, 0].astype(np.int64)),
            asset=_ro(f[:, 1].astype(np.int64)),
            units=_ro(f[:, 2].copy()),
            price=_ro(f[:, 3].copy()),
            commission=_ro(f[:, 4].copy()),
            reason=_ro(f[:, 5].astype(np.int8)),
        ),
        trades=_trades(trades[:q]),
        killed_at=int(killed_at),
    )


def _ro(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr
