"""The portfolio backtest: equal sleeves, one engine run per symbol, summed on the calendar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import SimResult, simulate
from mlalgo.backtest.metrics import SUMMARY_KEYS
from mlalgo.backtest.portfolio import run_portfolio

CASH = 100_000.0
COST = CostModel(commission_bps=1.0, slippage_bps=2.0)
NO_COST = CostModel(0, 0)
PAIR = ["AAPL", "IBM"]


def between(bars: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    times = bars.index.get_level_values("time")
    keep = (times >= pd.Timestamp(start, tz="UTC")) & (times <= pd.Timestamp(end, tz="UTC"))
    return bars.loc[keep]


@pytest.fixture(scope="module")
def year(sample_bars: pd.DataFrame) -> pd.DataFrame:
    """AAPL and IBM, 2006: one year of real bars on a shared calendar."""
    return between(sample_bars.loc[PAIR], "2006-01-01", "2006-12-31")


def random_targets(bars: pd.DataFrame, seed: int) -> pd.Series:
    """Exposures that change every few bars, including shorts, halves and NaN (hold)."""
    rng = np.random.default_rng(seed)
    choices = np.array([1.0, 0.5, 0.0, -0.5, np.nan])
    per_block = rng.choice(choices, size=len(bars) // 5 + 1)
    return pd.Series(np.repeat(per_block, 5)[: len(bars)], index=bars.index)


def sleeve_runs(
    bars: pd.DataFrame, target: pd.Series, cash: float, cost: CostModel
) -> dict[str, tuple[pd.DatetimeIndex, SimResult]]:
    runs = {}
    for symbol in dict.fromkeys(bars.index.get_level_values("symbol")):
        group = bars.xs(symbol, level="symbol")
        res = simulate(
            group["open"].to_numpy(),
            group["close"].to_numpy(),
            target.xs(symbol, level="symbol").to_numpy(),
            cash=cash,
            cost=cost,
        )
        runs[symbol] = (group.index, res)
    return runs


def test_portfolio_equity_is_the_sum_of_per_symbol_runs_with_half_the_cash_each(
    year: pd.DataFrame,
) -> None:
    target = random_targets(year, seed=3)

    result = run_portfolio(year, target, cash=CASH, cost=COST)

    runs = sleeve_runs(year, target, CASH / 2, COST)
    calendar = runs["AAPL"][0]
    assert runs["IBM"][0].equals(calendar)
    expected = runs["AAPL"][1].equity + runs["IBM"][1].equity
    assert result.equity.index.equals(calendar)
    np.testing.assert_allclose(result.equity.to_numpy(), expected, rtol=0, atol=1e-9)
    assert result.equity.iloc[0] == pytest.approx(CASH, abs=1e-9)  # nothing fills on bar 0
    for symbol, (_, res) in runs.items():
        np.testing.assert_array_equal(result.units[symbol].to_numpy(), res.units)


def test_buy_and_hold_without_costs_ends_at_each_sleeve_times_its_price_ratio(
    year: pd.DataFrame,
) -> None:
    target = pd.Series(1.0, index=year.index)

    result = run_portfolio(year, target, cash=CASH, cost=NO_COST)

    expected = 0.0
    for symbol in PAIR:
        bars = year.xs(symbol, level="symbol")
        expected += (CASH / 2) * bars["close"].iloc[-1] / bars["open"].iloc[1]
    assert result.equity.iloc[-1] == pytest.approx(expected, rel=1e-12)
    assert result.metrics["total_return"] == pytest.approx(expected / CASH - 1, rel=1e-9)
    assert len(result.trades) == 2
    assert result.trades["is_open"].all()


def test_trades_name_their_symbol_and_carry_times_from_the_bars(year: pd.DataFrame) -> None:
    target = random_targets(year, seed=11)

    result = run_portfolio(year, target, cash=CASH, cost=COST)

    trades = result.trades
    assert {"symbol", "entry_time", "exit_time"} <= set(trades.columns)
    assert set(trades["symbol"]) == set(PAIR)
    assert trades["entry_time"].is_monotonic_increasing
    assert (trades["exit_time"] >= trades["entry_time"]).all()
    for symbol, (times, res) in sleeve_runs(year, target, CASH / 2, COST).items():
        mine = trades.loc[trades["symbol"] == symbol].sort_values("entry_time", kind="stable")
        assert len(mine) == len(res.trades) > 3
        assert list(mine["entry_time"]) == list(times[res.trades.entry_bar])
        assert list(mine["exit_time"]) == list(times[res.trades.exit_bar])
        np.testing.assert_allclose(mine["pnl"].to_numpy(), res.trades.pnl, rtol=0, atol=1e-9)


def test_metrics_hold_the_summary_keys(year: pd.DataFrame) -> None:
    result = run_portfolio(year, random_targets(year, seed=5), cash=CASH, cost=COST)

    assert set(result.metrics) == set(SUMMARY_KEYS)
    assert result.metrics["n_trades"] == len(result.trades)
    assert result.metrics["total_return"] == pytest.approx(
        result.equity.iloc[-1] / CASH - 1, rel=1e-12
    )


def test_no_decision_anywhere_means_no_trades_and_flat_equity(year: pd.DataFrame) -> None:
    target = pd.Series(np.nan, index=year.index)

    result = run_portfolio(year, target, cash=CASH, cost=COST)

    assert len(result.trades) == 0
    assert {"symbol", "entry_time", "exit_time"} <= set(result.trades.columns)
    np.testing.assert_array_equal(result.equity.to_numpy(), CASH)
    assert (result.units.to_numpy() == 0).all()
    assert result.metrics["total_return"] == 0.0
    assert result.metrics["n_trades"] == 0


def test_symbols_on_different_calendars_hold_their_sleeve_before_and_after_their_bars(
    sample_bars: pd.DataFrame,
) -> None:
    # AAPL's sample ends on 2013-03-01; SPX goes on. Both trade from their first bar.
    bars = between(sample_bars.loc[["AAPL", "SPX"]], "2012-11-01", "2013-04-30")
    target = pd.Series(1.0, index=bars.index)

    result = run_portfolio(bars, target, cash=CASH, cost=NO_COST)

    runs = sleeve_runs(bars, target, CASH / 2, NO_COST)
    aapl = pd.Series(runs["AAPL"][1].equity, index=runs["AAPL"][0])
    spx = pd.Series(runs["SPX"][1].equity, index=runs["SPX"][0])
    assert result.equity.index.equals(spx.index)
    expected = aapl.reindex(spx.index).ffill() + spx
    np.testing.assert_allclose(result.equity.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
