"""Stress and scenarios: the same backtest under harsher costs, by sub-period, by volatility
regime and over named crash windows.

A Sharpe ratio over eleven years hides where it came from. These tables answer the questions
a reader asks next: does the edge survive doubled or quadrupled costs, is it one good year,
does it only work in calm markets, and what happened in 2000-2002 and 2008.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from mlalgo.backtest.metrics import max_drawdown, sharpe
from mlalgo.backtest.runner import run
from mlalgo.config import BacktestConfig

__all__ = ["COST_FACTORS", "CRASHES", "cost_stress", "period_table", "regime_table", "scenarios"]

COST_FACTORS = (0.5, 1.0, 2.0, 4.0)

# Peak-to-trough windows of the S&P 500 in the bundled sample (closing highs and lows).
CRASHES: Mapping[str, tuple[str, str]] = {
    "dot-com bust 2000-2002": ("2000-03-24", "2002-10-09"),
    "financial crisis 2007-2009": ("2007-10-09", "2009-03-09"),
}


def cost_stress(
    bars: pd.DataFrame,
    target: pd.Series,
    config: BacktestConfig,
    *,
    periods_per_year: float = 252,
    factors: Iterable[float] = COST_FACTORS,
) -> pd.DataFrame:
    """Every summary metric with every friction of ``config.costs`` scaled by each factor."""
    rows = []
    for factor in factors:
        scaled = config.model_copy(update={"costs": config.costs.scaled(factor)})
        result = run(bars, target, scaled, periods_per_year=periods_per_year, buy_hold=False)
        rows.append({"cost_factor": float(factor), **result.metrics})
    return pd.DataFrame(rows)


def _stats(equity: pd.Series, ppy: float) -> dict[str, float]:
    """Return, Sharpe and max drawdown of an equity curve, from its first value."""
    values = equity.to_numpy(dtype=np.float64)
    returns = values[1:] / values[:-1] - 1.0
    return {
        "return": float(values[-1] / values[0] - 1.0),
        "sharpe": sharpe(returns, ppy) if len(returns) else 0.0,
        "max_drawdown": max_drawdown(values),
    }


def _window(equity: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """The curve from the close before ``start`` (the window's base) through ``end``."""
    index = equity.index
    first = max(int(index.searchsorted(start)) - 1, 0)
    last = int(index.searchsorted(end, side="right"))
    return equity.iloc[first:last]


def period_table(
    strategy: pd.Series, benchmark: pd.Series, *, period: str = "Y", periods_per_year: int = 252
) -> pd.DataFrame:
    """Per calendar period (``Y``, ``Q`` or ``M``): return, Sharpe and max drawdown of both curves.

    Each period is measured from the previous period's last close, so the period returns
    compound to the total return.
    """
    times = strategy.index
    labels = (times.tz_convert(None) if times.tz is not None else times).to_period(period)
    rows = []
    for label in labels.unique():
        inside = labels == label
        start, end = times[inside][0], times[inside][-1]
        row: dict[str, object] = {"period": str(label), "bars": int(inside.sum())}
        for name, curve in (("strategy", strategy), ("buy_hold", benchmark)):
            stats = _stats(_window(curve, start, end), periods_per_year)
            row |= {f"{name}_{k}": v for k, v in stats.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def regime_table(
    strategy: pd.Series, benchmark: pd.Series, *, window: int = 63, periods_per_year: int = 252
) -> pd.DataFrame:
    """Strategy and buy & hold in calm and volatile markets.

    A bar is volatile when the benchmark's trailing ``window``-bar volatility (known at that
    bar's close, so the label uses no later data) is above its median over the test.
    """
    bench_r = benchmark.pct_change()
    vol = bench_r.rolling(window).std()
    known = vol.notna()
    volatile = vol > vol[known].median()
    strat_r = strategy.pct_change()
    rows = []
    for name, mask in (("calm", known & ~volatile), ("volatile", known & volatile)):
        rows.append(
            {
                "regime": name,
                "bars": int(mask.sum()),
                "strategy_sharpe": sharpe(strat_r[mask].to_numpy(), periods_per_year),
                "strategy_mean_daily": float(strat_r[mask].mean()),
                "buy_hold_sharpe": sharpe(bench_r[mask].to_numpy(), periods_per_year),
                "buy_hold_mean_daily": float(bench_r[mask].mean()),
            }
        )
    return pd.DataFrame(rows)


def scenarios(
    strategy: pd.Series,
    benchmark: pd.Series,
    *,
    windows: Mapping[str, tuple[str, str]] = CRASHES,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Both curves over each named window, clipped to the test; ``coverage`` says how much of
    the window the test covers (0 rows for windows it misses entirely)."""
    rows = []
    times = strategy.index
    for name, (start, end) in windows.items():
        lo, hi = pd.Timestamp(start, tz=times.tz), pd.Timestamp(end, tz=times.tz)
        inside = (times >= lo) & (times <= hi)
        if not inside.any():
            continue
        span = (min(hi, times[-1]) - max(lo, times[0])) / (hi - lo)
        row: dict[str, object] = {
            "scenario": name,
            "start": times[inside][0],
            "end": times[inside][-1],
            "coverage": float(span),
        }
        for label, curve in (("strategy", strategy), ("buy_hold", benchmark)):
            stats = _stats(_window(curve, lo, hi), periods_per_year)
            row |= {f"{label}_{k}": v for k, v in stats.items()}
        rows.append(row)
    return pd.DataFrame(rows)
