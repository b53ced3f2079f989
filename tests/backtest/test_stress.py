"""Stress tables against hand-computed values and against the engine they wrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest.metrics import sharpe
from mlalgo.backtest.runner import run
from mlalgo.backtest.stress import CRASHES, cost_stress, period_table, regime_table, scenarios
from mlalgo.config import BacktestConfig, CostConfig


def curve(values: list[float], start: str = "2020-12-30") -> pd.Series:
    index = pd.bdate_range(start, periods=len(values), tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def test_period_returns_are_measured_from_the_previous_close_and_compound() -> None:
    # 2020-12-30, 12-31 | 2021-01-01 .. : 100 -> 110 by the end of 2020, 110 -> 99 in 2021.
    strategy = curve([100.0, 110.0, 121.0, 99.0])
    benchmark = curve([100.0, 100.0, 100.0, 100.0])
    table = period_table(strategy, benchmark)
    assert table["period"].tolist() == ["2020", "2021"]
    assert table["strategy_return"].tolist() == pytest.approx([0.10, 99.0 / 110.0 - 1.0])
    # 121 -> 99 inside 2021 is the deepest fall: -18.18 %
    assert table.loc[1, "strategy_max_drawdown"] == pytest.approx(99.0 / 121.0 - 1.0)
    assert np.prod(1 + table["strategy_return"]) - 1 == pytest.approx(99.0 / 100.0 - 1.0)
    assert table["buy_hold_return"].tolist() == [0.0, 0.0]
    assert table["bars"].sum() == 4


def test_scenarios_clip_to_the_test_and_skip_windows_it_misses() -> None:
    index = pd.bdate_range("2008-01-01", "2010-12-31", tz="UTC")
    strategy = pd.Series(np.linspace(100.0, 130.0, len(index)), index=index)
    benchmark = pd.Series(np.linspace(100.0, 70.0, len(index)), index=index)
    table = scenarios(strategy, benchmark)
    assert table["scenario"].tolist() == ["financial crisis 2007-2009"]  # 2000-2002 missed
    row = table.iloc[0]
    lo, hi = (pd.Timestamp(d, tz="UTC") for d in CRASHES["financial crisis 2007-2009"])
    assert row["coverage"] == pytest.approx((hi - index[0]) / (hi - lo))
    assert row["start"] == index[0] and row["end"] == hi
    window = strategy[strategy.index <= hi]
    assert row["strategy_return"] == pytest.approx(window.iloc[-1] / window.iloc[0] - 1.0)
    assert row["strategy_max_drawdown"] == 0.0 and row["buy_hold_max_drawdown"] < 0.0


def test_regimes_split_the_known_bars_at_the_median_volatility() -> None:
    rng = np.random.default_rng(3)
    calm = rng.normal(0.0, 0.005, 300)
    wild = rng.normal(0.0, 0.03, 300)
    bench = curve((100 * np.cumprod(1 + np.r_[calm, wild])).tolist(), "2010-01-01")
    strat = curve((100 * np.cumprod(1 + np.r_[calm, -wild])).tolist(), "2010-01-01")
    table = regime_table(strat, bench, window=20).set_index("regime")
    known = len(bench) - 20  # the first return is NaN, then 20 returns per volatility estimate
    assert table["bars"].sum() == known
    assert table.loc["calm", "bars"] == pytest.approx(known / 2, abs=1)
    # The strategy mirrors the market in the wild half: opposite Sharpe ratios there.
    assert table.loc["volatile", "strategy_sharpe"] == pytest.approx(
        -table.loc["volatile", "buy_hold_sharpe"], rel=0.2
    )
    wild_r = strat.pct_change()[bench.pct_change().rolling(20).std() > 0.02]
    assert sharpe(wild_r.to_numpy()) == pytest.approx(
        table.loc["volatile", "strategy_sharpe"], rel=0.3
    )


def test_cost_stress_scales_both_costs_and_matches_the_engine(sample_bars) -> None:
    bars = sample_bars.loc[sample_bars.index.get_level_values("symbol").isin(["AAPL", "MSFT"])]
    bars = bars.loc[bars.index.get_level_values("time") >= pd.Timestamp("2010-01-01", tz="UTC")]
    rng = np.random.default_rng(5)
    target = pd.Series(rng.choice([0.0, 1.0], size=len(bars), p=[0.5, 0.5]), index=bars.index)
    cfg = BacktestConfig(costs=CostConfig(commission_bps=1.0, slippage_bps=2.0, half_spread_bps=1))
    table = cost_stress(bars, target, cfg)
    assert table["cost_factor"].tolist() == [0.5, 1.0, 2.0, 4.0]
    direct = run(bars, target, cfg).metrics
    doubled = cfg.model_copy(
        update={"costs": CostConfig(commission_bps=2.0, slippage_bps=4.0, half_spread_bps=2)}
    )
    assert table.loc[2, "total_return"] == run(bars, target, doubled).metrics["total_return"]
    assert table.loc[1, "total_return"] == direct["total_return"]
    assert table.loc[1, "n_trades"] == direct["n_trades"]
    assert table["total_return"].is_monotonic_decreasing  # same trades, dearer fills
    assert table["total_return"].iloc[0] > table["total_return"].iloc[-1]
