"""What a person reads after a backtest: the equity/drawdown figure and the per-fold table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlalgo.backtest.metrics import drawdown, max_drawdown, returns_from_equity, sharpe


def equity_figure(strategy: pd.Series, buy_hold: pd.Series, title: str) -> Figure:
    """Equity of both curves (log scale) over their drawdowns; no global pyplot state."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for series, label, colour in (
        (strategy, "strategy", "tab:blue"),
        (buy_hold, "buy & hold", "tab:gray"),
    ):
        top.plot(series.index, series.to_numpy(), label=label, color=colour, lw=1.2)
        bottom.fill_between(
            series.index, drawdown(series.to_numpy()) * 100, 0, color=colour, alpha=0.35
        )
    top.set_yscale("log")
    top.set_ylabel("equity")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    return fig


def fold_table(
    folds: pd.DataFrame,
    strategy: pd.Series,
    buy_hold: pd.Series,
    *,
    initial: float,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Per-fold out-of-sample trading results next to the fold's classification scores."""
    rows = []
    for row in folds.itertuples(index=False):
        rows.append(
            {
                **row._asdict(),
                **_window_stats("", strategy, row.test_start, row.test_end, periods_per_year),
                **_window_stats(
                    "buy_hold_", buy_hold, row.test_start, row.test_end, periods_per_year
                ),
            }
        )
    return pd.DataFrame(rows)


def _window_stats(
    prefix: str, equity: pd.Series, start: pd.Timestamp, end: pd.Timestamp, ppy: int
) -> dict[str, float]:
    before = equity.loc[:start].iloc[:-1]
    window = equity.loc[start:end].to_numpy()
    if len(window) == 0:
        return {
            f"{prefix}return": np.nan,
            f"{prefix}sharpe": np.nan,
            f"{prefix}max_drawdown": np.nan,
        }
    base = float(before.iloc[-1]) if len(before) else float(window[0])
    rets = returns_from_equity(window, base)
    return {
        f"{prefix}return": float(window[-1] / base - 1.0),
        f"{prefix}sharpe": sharpe(rets, ppy),
        f"{prefix}max_drawdown": max_drawdown(np.r_[base, window]),
    }
