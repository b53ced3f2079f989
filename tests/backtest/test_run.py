"""``mlalgo.backtest.run``: DataFrames in, a BacktestResult out, on one shared cash account."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest import BacktestResult, run
from mlalgo.backtest.engine import simulate
from mlalgo.backtest.metrics import SUMMARY_KEYS
from mlalgo.config import BacktestConfig, CostConfig, RiskConfig

CASH = 100_000.0
COSTS = CostConfig(commission_bps=1.0, slippage_bps=2.0)
NO_COSTS = CostConfig(commission_bps=0.0, slippage_bps=0.0)
PAIR = ["AAPL", "IBM"]


def between(bars: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    times = bars.index.get_level_values("time")
    keep = (times >= pd.Timestamp(start, tz="UTC")) & (times <= pd.Timestamp(end, tz="UTC"))
    return bars.loc[keep]


def config(**kw: object) -> BacktestConfig:
    return BacktestConfig(initial_cash=CASH, **{"costs": COSTS, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def year(sample_bars: pd.DataFrame) -> pd.DataFrame:
    """AAPL and IBM, 2006: one year of real bars on a shared calendar."""
    return between(sample_bars.loc[PAIR], "2006-01-01", "2006-12-31")


def random_targets(bars: pd.DataFrame, seed: int) -> pd.Series:
    """Exposures that change every few bars, including shorts, halves and NaN (hold)."""
    rng = np.random.default_rng(seed)
    choices = np.array([0.5, 0.25, 0.0, -0.25, np.nan])
    per_block = rng.choice(choices, size=len(bars) // 5 + 1)
    return pd.Series(np.repeat(per_block, 5)[: len(bars)], index=bars.index)


def test_one_symbol_is_exactly_the_single_instrument_engine(year: pd.DataFrame) -> None:
    aapl = year.xs("AAPL", level="symbol")
    target = random_targets(aapl, seed=2) * 2

    result = run(aapl, target, config())

    ref = simulate(
        aapl["open"], aapl["close"], target, cash=CASH, cost=COSTS.cost_model(), fill="next_open"
    )
    np.testing.assert_array_equal(result.equity.to_numpy(), ref.equity)
    np.testing.assert_array_equal(result.positions.iloc[:, 0].to_numpy(), ref.units)
    np.testing.assert_array_equal(result.trades["pnl"].to_numpy(), ref.trades.pnl)
    assert len(result.fills) == len(ref.fill_bar)
    assert result.equity.index.equals(aapl.index)


def test_two_symbols_entered_together_and_held_equal_two_half_sleeves(year: pd.DataFrame) -> None:
    # Both positions open on the same bar from the same equity and are never resized, so a
    # shared account with 0.5 each is two independent accounts with half the cash each.
    target = pd.Series(0.5, index=year.index)

    result = run(year, target, config())

    expected = 0.0
    for symbol in PAIR:
        bars = year.xs(symbol, level="symbol")
        sleeve = simulate(
            bars["open"], bars["close"], np.ones(len(bars)), cash=CASH / 2, cost=COSTS.cost_model()
        )
        expected = expected + sleeve.equity
    np.testing.assert_allclose(result.equity.to_numpy(), expected, rtol=1e-12)
    assert result.trades["is_open"].all() and len(result.trades) == 2


def test_a_later_entry_is_sized_from_the_whole_accounts_equity(year: pd.DataFrame) -> None:
    target = pd.Series(0.5, index=year.index)
    ibm = year.index.get_level_values("symbol") == "IBM"
    times = year.index.get_level_values("time")
    start = times.unique()[100]
    target[ibm & (times < start)] = 0.0  # IBM waits 100 bars while AAPL moves the equity

    result = run(year, target, config(costs=NO_COSTS))

    fill = result.fills.loc[(result.fills["symbol"] == "IBM")].iloc[0]
    at = result.equity.index.get_loc(fill["time"])
    aapl_units = result.positions["AAPL"].iloc[at]
    equity_at_open = (
        result.equity.iloc[at - 1]
        - aapl_units * year.loc[("AAPL", result.equity.index[at - 1]), "close"]
        + aapl_units * year.loc[("AAPL", fill["time"]), "open"]
    )
    assert fill["units"] == pytest.approx(0.5 * equity_at_open / fill["price"], rel=1e-12)
    assert equity_at_open != pytest.approx(CASH, rel=1e-3)  # AAPL's PnL counts


def test_result_holds_everything_a_report_needs(year: pd.DataFrame) -> None:
    result = run(year, random_targets(year, seed=5), config())

    assert isinstance(result, BacktestResult)
    assert set(SUMMARY_KEYS) | {"psr", "dsr"} == set(result.metrics)
    assert result.metrics["dsr"] == result.metrics["psr"]  # one trial: nothing to deflate
    assert result.metrics["n_trades"] == len(result.trades)
    assert result.metrics["total_return"] == pytest.approx(result.equity.iloc[-1] / CASH - 1)
    assert result.returns.iloc[0] == pytest.approx(result.equity.iloc[0] / CASH - 1)
    assert list(result.positions.columns) == PAIR
    assert {
        "symbol",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "units",
        "pnl",
        "commission",
        "exit_reason",
    } <= set(result.trades.columns)
    assert result.trades["entry_time"].is_monotonic_increasing
    assert (result.trades["commission"] > 0).all()
    assert result.trades["pnl"].sum() == pytest.approx(result.equity.iloc[-1] - CASH, abs=1e-6)
    assert result.fills["commission"].sum() == pytest.approx(
        result.trades["commission"].sum(), rel=1e-12
    )
    assert result.buy_hold is not None and result.buy_hold.buy_hold is None
    assert len(result.buy_hold.trades) == 2


def test_the_deflated_sharpe_ratio_falls_with_the_number_of_trials(year: pd.DataFrame) -> None:
    target = pd.Series(0.5, index=year.index)
    one = run(year, target, config(), buy_hold=False).metrics
    many = run(year, target, config(), n_trials=100, trial_sharpes_variance=1e-3).metrics
    assert many["dsr"] < one["dsr"] == one["psr"]


def test_risk_limits_from_the_config_reach_the_engine(year: pd.DataFrame) -> None:
    target = pd.Series(0.5, index=year.index)
    result = run(year, target, config(risk=RiskConfig(trailing_stop=0.03)))
    reasons = set(result.trades["exit_reason"])
    assert "trailing_stop" in reasons
    assert len(result.trades) == 2  # a standing target does not re-enter after its stop


def test_no_decision_anywhere_means_no_trades_and_flat_equity(year: pd.DataFrame) -> None:
    result = run(year, pd.Series(np.nan, index=year.index), config())

    assert len(result.trades) == 0 and len(result.fills) == 0
    np.testing.assert_array_equal(result.equity.to_numpy(), CASH)
    assert result.metrics["n_trades"] == 0


def test_symbols_on_different_calendars_trade_only_on_their_bars(sample_bars) -> None:
    # AAPL's sample ends on 2013-03-01; SPX goes on. AAPL is marked at its last close after.
    bars = between(sample_bars.loc[["AAPL", "SPX"]], "2012-11-01", "2013-04-30")
    result = run(bars, pd.Series(0.5, index=bars.index), config(costs=NO_COSTS))

    spx_times = bars.xs("SPX", level="symbol").index
    assert result.equity.index.equals(spx_times)
    last_aapl = bars.xs("AAPL", level="symbol")["close"].iloc[-1]
    after = result.equity.index > pd.Timestamp("2013-03-01", tz="UTC")
    units = result.positions.loc[after]
    assert (units["AAPL"] == units["AAPL"].iloc[0]).all()
    spx_close = bars.xs("SPX", level="symbol")["close"].loc[after]
    cash = result.equity.loc[after] - units["AAPL"] * last_aapl - units["SPX"] * spx_close
    assert np.ptp(cash.to_numpy()) < 1e-6  # nothing but the prices moves the equity


def test_bad_inputs_are_named(year: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="indexed like bars"):
        run(year, pd.Series(1.0, index=year.index[:10]), config())
    with pytest.raises(ValueError, match="no high"):
        run(year.drop(columns="high"), pd.Series(1.0, index=year.index), config())
    with pytest.raises(ValueError, match="one target per bar"):
        run(year, np.ones(3), config())


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_daily_loss_days_are_calendar_days_whatever_the_time_unit(unit: str) -> None:
    """pandas 3 keeps a file's time unit; the daily-loss day label must not depend on it."""
    from mlalgo.backtest.runner import _days

    times = pd.DatetimeIndex(["1999-12-31 23:00", "2000-01-01", "2000-01-01 12:00", "2000-01-03"],
                             tz="UTC").as_unit(unit)  # fmt: skip
    days = _days(times)
    assert days.tolist() == [10956, 10957, 10957, 10959]
