"""Bar-by-bar simulation of a single instrument traded to a target exposure.

The engine is deliberately small so its honesty can be checked by hand: a decision taken at
the close of bar ``t`` is filled at the next open by default (no look-ahead), every fill pays
slippage and commission from :class:`~mlalgo.backtest.costs.CostModel`, and the account is
only rebalanced when the decision changes, so holding a view costs nothing.

Positions are fractional by default (``sizing="fraction"``). ``sizing="whole"`` trades whole
units the way backtesting.py 0.6 does, so a strategy can be checked against it fill by fill
(``tests/backtest/test_parity_backtesting_py.py``). The rules read from its ``_Broker``:

* ``Strategy.buy()``/``sell()`` default to ``size = 1 - eps``, a fraction of the equity left
  once earlier orders on the bar are filled (``margin_available``: cash plus open P&L minus
  the value of open trades, times ``1 / margin``).
* A fractional order fills ``int(available * size // (price + commission(size, price) / size))``
  units, i.e. ``floor(E / (p * (1 + c)))`` at relative commission ``c``: the entry
  commission is reserved. Zero units cancels the order (with a warning), which leaves the
  account flat after a close.
* Market orders fill at the next bar's open (at the signal bar's close with
  ``trade_on_close=True``); the entry price carries ``spread`` but never the commission.
* Commission ``|size| * price * c`` is paid in cash at entry and again at exit (at the exit
  price); ``Trade.pl = size * (exit - entry) - both commissions``. An open trade's ``pl``
  leaves its entry commission out, but that commission has already left the cash.
* ``exclusive_orders=True`` makes each new order queue a ``Trade.close()`` for every open
  trade ahead of it; closes are processed first on the fill bar at the same open, so a
  reversal is sized from the cash left after the exit commission.
* Equity is ``cash + open P&L`` at each close; open trades stay open at the end unless
  ``finalize_trades=True``, and only closed trades appear in the statistics.

Whole sizing matches those rules without keeping an order book: the new position is sized as
if the current one were closed first at the fill price, ``E = cash + u * p - |u| * p * c``,
then ``units = sign(target) * floor(|target| * E / (p * (1 + c)))``, and only the difference
is traded. From flat and on a flip that is backtesting.py's sizing exactly; a same-direction
resize reserves more commission than it pays, so an all-in long still never borrows.
backtesting.py's ``spread`` is charged on entry only, while slippage here hits every fill, so
the two agree only with zero slippage and zero spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from mlalgo.backtest.core import EXIT_REASONS, SIZING_CODES, portfolio_core
from mlalgo.backtest.costs import CostModel

__all__ = [
    "DEFAULT_COST",
    "FILL_CLOSE",
    "FILL_NEXT_OPEN",
    "SIZING_FRACTION",
    "SIZING_WHOLE",
    "SimResult",
    "Trades",
    "simulate",
    "trades_from_rows",
]

FILL_NEXT_OPEN = "next_open"
FILL_CLOSE = "close"
SIZING_FRACTION = "fraction"
SIZING_WHOLE = "whole"
DEFAULT_COST = CostModel()

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_ArrayT = TypeVar("_ArrayT", bound=np.ndarray)


@dataclass(frozen=True, slots=True, eq=False)
class Trades:
    """Round trips rebuilt from the fills, one row per trade; all arrays are read-only.

    A trade starts when the position leaves zero and ends when it returns to zero or flips
    sign; scaling in or out keeps it open and its ``pnl`` counts every fill. A flip's
    commission is split pro rata by units between the closing and the opening trade.
    """

    entry_bar: IntArray  # bar of the opening fill
    exit_bar: IntArray  # bar of the closing fill, n - 1 if still open
    direction: npt.NDArray[np.int8]  # +1 long, -1 short
    units: FloatArray  # absolute size of the opening fill
    entry_price: FloatArray  # slipped price of the opening fill
    exit_price: FloatArray  # slipped price of the closing fill, last close if still open
    pnl: FloatArray  # net of slippage, commissions and borrow; open trades marked at last close
    is_open: npt.NDArray[np.bool_]  # still open at the last bar (no exit costs charged)
    commission: FloatArray  # every commission of the trade's fills (a flip's split pro rata)
    borrow: FloatArray  # borrow paid while the trade was short
    exit_reason: npt.NDArray[np.int8]  # index into EXIT_REASONS
    asset: IntArray  # column of the instrument in the simulated arrays

    def __len__(self) -> int:
        return int(self.pnl.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    """Per-bar account state (length n) and fills (length k); all arrays are read-only."""

    equity: FloatArray  # account value at each close: cash + units * close
    units: FloatArray  # units held at each close (negative = short)
    cash: FloatArray  # cash at each close
    fill_bar: IntArray  # bar of each fill (at most one fill per bar)
    fill_units: FloatArray  # signed units traded (+buy, -sell)
    fill_price: FloatArray  # price paid or received, including slippage
    fill_commission: FloatArray  # commission paid on each fill (>= 0), fixed part included
    borrow: FloatArray  # borrow paid at each close for a short held over it (length n)
    trades: Trades  # round trips built from the fills


def _prices(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"simulate: {name} must be 1-D (got shape {arr.shape}); pass one value per bar"
        )
    bad = ~(np.isfinite(arr) & (arr > 0.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"simulate: {name} must be finite and > 0 (bar {i} is {float(arr[i])}); "
            "drop or repair bad bars before simulating"
        )
    return np.ascontiguousarray(arr)


def _validate(
    open_: npt.ArrayLike,
    close: npt.ArrayLike,
    target: npt.ArrayLike,
    cash: float,
    fill: str,
    sizing: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    if fill not in (FILL_NEXT_OPEN, FILL_CLOSE):
        raise ValueError(
            f"simulate: fill must be {FILL_NEXT_OPEN!r} or {FILL_CLOSE!r} (got {fill!r})"
        )
    if sizing not in (SIZING_FRACTION, SIZING_WHOLE):
        raise ValueError(
            f"simulate: sizing must be {SIZING_FRACTION!r} or {SIZING_WHOLE!r} (got {sizing!r})"
        )
    if not math.isfinite(cash) or cash <= 0:
        raise ValueError(f"simulate: cash must be finite and > 0 (got {cash!r})")
    o = _prices("open", open_)
    c = _prices("close", close)
    tgt = np.asarray(target, dtype=np.float64)
    if tgt.ndim != 1:
        raise ValueError(
            f"simulate: target must be 1-D (got shape {tgt.shape}); pass one target per bar"
        )
    for name, arr in (("close", c), ("target", tgt)):
        if arr.shape[0] != o.shape[0]:
            raise ValueError(
                f"simulate: open has {o.shape[0]} bars but {name} has {arr.shape[0]}; "
                f"pass one {name} per bar"
            )
    if o.shape[0] == 0:
        raise ValueError("simulate: got 0 bars; pass at least one bar of prices")
    bad = np.isinf(tgt)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"simulate: target must be finite or NaN (bar {i} is {float(tgt[i])}); "
            "use NaN for 'no decision' and clip exposures to a finite range"
        )
    return o, c, np.ascontiguousarray(tgt)


def trades_from_rows(rows: FloatArray) -> Trades:
    """Trades from the core's float-coded rows, in the order they closed (open ones last)."""
    reason = rows[:, 10].astype(np.int8)
    return Trades(
        entry_bar=_frozen(rows[:, 1].astype(np.int64)),
        exit_bar=_frozen(rows[:, 2].astype(np.int64)),
        direction=_frozen(rows[:, 3].astype(np.int8)),
        units=_frozen(rows[:, 4].copy()),
        entry_price=_frozen(rows[:, 5].copy()),
        exit_price=_frozen(rows[:, 6].copy()),
        pnl=_frozen(rows[:, 7].copy()),
        is_open=_frozen(reason == EXIT_REASONS.index("open")),
        commission=_frozen(rows[:, 8].copy()),
        borrow=_frozen(rows[:, 9].copy()),
        exit_reason=_frozen(reason),
        asset=_frozen(rows[:, 0].astype(np.int64)),
    )


def _frozen(arr: _ArrayT) -> _ArrayT:
    arr.setflags(write=False)
    return arr


def simulate(
    open_: npt.ArrayLike,
    close: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    cash: float = 1.0,
    cost: CostModel = DEFAULT_COST,
    fill: str = FILL_NEXT_OPEN,
    sizing: str = SIZING_FRACTION,
    periods_per_year: float = 252,
) -> SimResult:
    """Simulate trading one instrument to a target exposure, bar by bar.

    Parameters
    ----------
    open_, close : array_like of float, shape (n,)
        Bar open and close prices, finite and > 0.
    target : array_like of float, shape (n,)
        Desired exposure as a signed fraction of equity (1 = fully long, -0.5 = half short),
        decided at the close of each bar. NaN means "no decision": keep the position.
    cash : float
        Starting cash (> 0).
    cost : CostModel
        Commission (relative and fixed), slippage, half spread and volatility slippage on
        every fill; borrow on shorts held over a close.
    fill : {"next_open", "close"}
        ``"next_open"`` (default, honest) fills the decision of bar ``t`` at ``open_[t+1]``
        and never fills the last bar's decision; ``"close"`` fills at ``close[t]`` and is only
        for comparisons, since it assumes trading at the price the decision was made on.
    sizing : {"fraction", "whole"}
        ``"fraction"`` (default) holds fractional units; ``"whole"`` floors every position to
        whole units with the commission reserved, as backtesting.py does (module docstring).
    periods_per_year : float
        Bars per year, to turn the cost model's annual borrow rate into a per-bar charge.

    Returns
    -------
    SimResult
        Per-bar equity, units and cash, the fills and the reconstructed trades.

    Notes
    -----
    The account trades only when the target differs from the last target that produced the
    current position, so drift does not cause rebalancing. At a fill price ``p`` the equity
    ``E = cash + units * p`` is sized to ``target * E / (p_fill * (1 + commission_rate))``
    with ``p_fill`` the slipped price in the trade's direction; this reserves the commission
    so an all-in buy leaves cash at zero rather than negative. With ``sizing="whole"`` the
    size is ``floor(|target| * E' / (p_fill * (1 + commission_rate)))`` where ``E'`` is the
    cash left after closing the current position at ``p_fill``, so a flip also reserves the
    commission of its closing leg.

    Examples
    --------
    >>> res = simulate([10.0, 10.0, 12.0], [10.0, 11.0, 12.0], [1.0, 1.0, 1.0], cash=100.0,
    ...                cost=CostModel(commission_bps=10.0, slippage_bps=0.0), sizing="whole")
    >>> res.units.tolist(), round(float(res.cash[-1]), 2)
    ([0.0, 9.0, 9.0], 9.91)
    """
    if not isinstance(cost, CostModel):
        raise ValueError(f"simulate: cost must be a CostModel (got {type(cost).__name__})")
    o, c, tgt = _validate(open_, close, target, cash, fill, sizing)
    slip = np.ascontiguousarray(cost.adverse_rates(c, fill == FILL_CLOSE))
    if float(slip.max()) >= 1.0:
        i = int(np.argmax(slip))
        raise ValueError(
            f"simulate: the cost model's adverse move at bar {i} is {slip[i]:.2%} of the price; "
            "slippage, half spread and volatility slippage must stay below 100 % "
            "(a sell would otherwise fill at a price <= 0)"
        )
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"simulate: periods_per_year must be > 0 (got {periods_per_year!r})")
    col = (n := c.shape[0], 1)
    equity, cash_arr, units2, fills, k, trades, q, _ = portfolio_core(
        o.reshape(col),
        c.reshape(col),
        c.reshape(col),
        c.reshape(col),
        tgt.reshape(col),
        np.arange(n, dtype=np.int64),
        float(cash),
        cost.commission_rate,
        float(cost.commission_fixed),
        slip.reshape(col),
        cost.borrow_rate(periods_per_year),
        fill == FILL_CLOSE,
        SIZING_CODES[sizing],
        1.0,
        np.inf,
        np.inf,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    units = units2[:, 0].copy()
    borrow = np.zeros(n)
    short = units < 0.0
    borrow[short] = -units[short] * c[short] * cost.borrow_rate(periods_per_year)
    fills = fills[:k]
    return SimResult(
        equity=_frozen(equity),
        units=_frozen(units),
        cash=_frozen(cash_arr),
        fill_bar=_frozen(fills[:, 0].astype(np.int64)),
        fill_units=_frozen(fills[:, 2].copy()),
        fill_price=_frozen(fills[:, 3].copy()),
        fill_commission=_frozen(fills[:, 4].copy()),
        borrow=_frozen(borrow),
        trades=trades_from_rows(trades[:q]),
    )
