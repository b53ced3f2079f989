"""Several symbols traded side by side: one engine run per symbol, one equity curve, one summary.

Capital is split equally between the symbols at the start and each sleeve is simulated on its own
bars; the portfolio is the sum of the sleeves on the union calendar. (A shared-cash portfolio
with rebalancing is a deeper engine; this split keeps every sleeve checkable by hand.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import simulate
from mlalgo.backtest.metrics import summarize


@dataclass(frozen=True)
class PortfolioResult:
    equity: pd.Series  # portfolio value at each close, union calendar
    units: pd.DataFrame  # units held at each close, one column per symbol
    trades: pd.DataFrame  # one row per trade, all symbols
    metrics: dict[str, float]


def run_portfolio(
    bars: pd.DataFrame,
    target: pd.Series,
    *,
    cash: float,
    cost: CostModel,
    fill: str = "next_open",
    periods_per_year: int = 252,
) -> PortfolioResult:
    """Backtest per-bar targets (indexed like ``bars``; NaN = keep position) on every symbol."""
    symbols = list(dict.fromkeys(bars.index.get_level_values("symbol")))
    sleeve = cash / len(symbols)
    equity, units, trades, notional = {}, {}, [], []
    for sym in symbols:
        group = bars.xs(sym, level="symbol")
        tgt = target.xs(sym, level="symbol").reindex(group.index).to_numpy(dtype=np.float64)
        res = simulate(
            group["open"].to_numpy(),
            group["close"].to_numpy(),
            tgt,
            cash=sleeve,
            cost=cost,
            fill=fill,
            periods_per_year=periods_per_year,
        )
        equity[sym] = pd.Series(res.equity, index=group.index)
        units[sym] = pd.Series(res.units, index=group.index)
        notional.append(np.abs(res.fill_units * res.fill_price))
        trades.append(_trade_frame(sym, group.index, res.trades))
    eq = pd.DataFrame(equity).ffill().fillna(sleeve)
    held = pd.DataFrame(units).ffill().fillna(0.0)
    total = eq.sum(axis=1).rename("equity")
    trade_frame = pd.concat(trades, ignore_index=True).sort_values("entry_time", kind="stable")
    metrics = summarize(
        total.to_numpy(),
        initial=cash,
        trade_pnl=trade_frame["pnl"].to_numpy(),
        in_market=(held != 0).any(axis=1).to_numpy(),
        traded_notional=np.concatenate(notional),
        ppy=periods_per_year,
    )
    return PortfolioResult(total, held, trade_frame.reset_index(drop=True), metrics)


def _trade_frame(symbol: str, times: pd.DatetimeIndex, t: object) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": symbol,
            "entry_time": times[t.entry_bar],  # type: ignore[attr-defined]
            "exit_time": times[t.exit_bar],  # type: ignore[attr-defined]
            "direction": t.direction,  # type: ignore[attr-defined]
            "units": t.units,  # type: ignore[attr-defined]
            "entry_price": t.entry_price,  # type: ignore[attr-defined]
            "exit_price": t.exit_price,  # type: ignore[attr-defined]
            "pnl": t.pnl,  # type: ignore[attr-defined]
            "is_open": t.is_open,  # type: ignore[attr-defined]
        }
    )
