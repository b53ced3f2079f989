"""Tests for the performance metrics, each against a value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlalgo.backtest import metrics as m
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import simulate

# A hand-built curve: peaks 100 -> 120 -> 130. Drawdowns: 120 -> 90 (-25 %, bars 2-3, 2 bars),
# 130 -> 104 (-20 %, bars 6-8, 3 bars and still below the peak at the end).
CURVE = np.array([100.0, 120.0, 90.0, 110.0, 120.0, 130.0, 117.0, 104.0, 125.0])
R3 = np.array([0.01, -0.02, 0.03])
# mean(R3) = 0.02 / 3; deviations (1, -8, 7) / 300; sum of squares = 114 / 90000;
# var (ddof=1) = 57 / 90000 -> std = sqrt(57) / 300.
R3_STD = math.sqrt(57) / 300


def test_returns_from_equity_measures_first_bar_against_initial() -> None:
    np.testing.assert_allclose(
        m.returns_from_equity([110.0, 99.0, 108.9], 100.0), [0.1, -0.1, 0.1], atol=1e-12
    )


def test_drawdown_and_duration_on_hand_built_curve() -> None:
    expected = [0.0, 0.0, -0.25, -10 / 120, 0.0, 0.0, -0.1, -0.2, -5 / 130]
    np.testing.assert_allclose(m.drawdown(CURVE), expected, atol=1e-12)
    assert m.max_drawdown(CURVE) == pytest.approx(-0.25, abs=1e-12)
    # deepest drawdown lasts 2 bars, the later shallower one 3 bars
    assert m.max_drawdown_duration(CURVE) == 3
    assert m.max_drawdown([1.0, 2.0, 3.0]) == 0.0
    assert m.max_drawdown_duration([1.0, 2.0, 2.0, 3.0]) == 0  # equal to the peak is not below
    assert m.max_drawdown_duration([]) == 0 and m.max_drawdown([]) == 0.0


def test_total_and_annual_return_and_calmar() -> None:
    # 125 / 100 - 1 = 0.25 over 9 bars; annualised with 252 bars/year: 1.25 ** (252 / 9) - 1
    assert m.total_return(CURVE, 100.0) == pytest.approx(0.25, abs=1e-12)
    annual = 1.25**28 - 1
    assert m.annual_return(CURVE, 100.0, 252) == pytest.approx(annual, rel=1e-12)
    assert m.calmar(CURVE, 100.0, 252) == pytest.approx(annual / 0.25, rel=1e-12)
    assert math.isnan(m.calmar([100.0, 101.0, 102.0], 100.0))  # no drawdown
    assert m.annual_return([50.0, 0.0], 100.0) == -1.0  # wiped out


def test_volatility_sharpe_sortino_by_hand() -> None:
    assert m.volatility(R3, 252) == pytest.approx(R3_STD * math.sqrt(252), rel=1e-12)
    # sharpe = (0.02 / 3) / (sqrt(57) / 300) * sqrt(252) = 2 * sqrt(252 / 57) ~ 4.2053
    assert m.sharpe(R3) == pytest.approx(2 * math.sqrt(252 / 57), rel=1e-12)
    # 2.52 % a year -> 1e-4 per bar subtracted from the mean
    assert m.sharpe(R3, 252, risk_free=0.0252) == pytest.approx(
        (0.02 / 3 - 1e-4) / R3_STD * math.sqrt(252), rel=1e-12
    )
    # downside deviation = sqrt(0.02 ** 2 / 3) -> sortino = (0.02/3) / (0.02/sqrt 3) * sqrt 252
    assert m.sortino(R3) == pytest.approx(math.sqrt(84), rel=1e-12)
    assert m.sortino(R3, 12) == pytest.approx(math.sqrt(12 / 3), rel=1e-12)


def test_degenerate_return_series() -> None:
    assert m.sharpe([0.01]) == 0.0
    assert m.sharpe([]) == 0.0
    assert m.sharpe([0.01, 0.01, 0.01]) == 0.0  # no variation: no risk to reward
    assert m.volatility([0.01]) == 0.0
    assert m.sortino([0.01, 0.02]) == math.inf  # gains without any downside
    assert m.sortino([0.0, 0.0]) == 0.0
    assert m.sortino([]) == 0.0


def test_profit_factor_and_hit_rate() -> None:
    pnl = [10.0, -5.0, 20.0, -15.0]
    assert m.profit_factor(pnl) == pytest.approx(30 / 20)
    assert m.hit_rate(pnl) == 0.5
    assert math.isnan(m.profit_factor([])) and math.isnan(m.hit_rate([]))
    assert m.profit_factor([1.0, 2.0]) == math.inf and m.hit_rate([1.0, 2.0]) == 1.0
    assert m.profit_factor([-1.0, -2.0]) == 0.0 and m.hit_rate([-1.0, -2.0]) == 0.0
    assert math.isnan(m.profit_factor([0.0, 0.0])) and m.hit_rate([0.0, 0.0]) == 0.0


def test_exposure_and_turnover() -> None:
    assert m.exposure([0.0, 1.0, -2.0, 0.0]) == 0.5
    assert m.exposure(np.array([True, False, False])) == pytest.approx(1 / 3)
    # notional 2 * 10 + 2 * 12 = 44 over mean equity 105
    assert m.turnover([2.0, -2.0], [10.0, 12.0], [100.0, 110.0]) == pytest.approx(44 / 105)
    assert m.turnover([], [], [1.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="one price per fill"):
        m.turnover([1.0], [1.0, 2.0], [1.0])


def test_summary_of_hand_computed_backtest() -> None:
    # the 4-bar example of test_engine: u = 100 / 11.011 bought at 11, sold at 13, 10 bps
    res = simulate(
        [10.0, 11.0, 12.0, 13.0],
        [10.5, 11.5, 12.5, 13.5],
        [1.0, 1.0, 0.0, 0.0],
        cash=100.0,
        cost=CostModel(commission_bps=10.0, slippage_bps=0.0),
    )
    s = m.summary(res, initial=100.0)
    assert tuple(s) == m.SUMMARY_KEYS
    assert set(s) == {
        "total_return", "annual_return", "volatility", "sharpe", "sortino", "calmar",
        "max_drawdown", "max_drawdown_duration", "profit_factor", "hit_rate", "n_trades",
        "avg_trade", "avg_win", "avg_loss", "expectancy", "exposure", "turnover",
    }  # fmt: skip
    assert all(isinstance(v, float) for v in s.values())
    equity = np.array([100.0, 1150 / 11.011, 1250 / 11.011, 1298.7 / 11.011])
    assert s["total_return"] == pytest.approx(1298.7 / 1101.1 - 1, rel=1e-12)
    assert s["annual_return"] == pytest.approx((1298.7 / 1101.1) ** 63 - 1, rel=1e-9)
    assert s["max_drawdown"] == 0.0 and s["max_drawdown_duration"] == 0.0
    assert math.isnan(s["calmar"])
    assert s["n_trades"] == 1.0 and s["hit_rate"] == 1.0 and s["profit_factor"] == math.inf
    assert s["avg_trade"] == pytest.approx(197.6 / 11.011, rel=1e-12)
    assert s["exposure"] == 0.5  # long on bars 1 and 2 of 4
    # traded notional: u * 11 + u * 13 = 2400 / 11.011
    assert s["turnover"] == pytest.approx(2400 / 11.011 / equity.mean(), rel=1e-12)
    returns = m.returns_from_equity(equity, 100.0)
    assert s["sharpe"] == pytest.approx(m.sharpe(returns), rel=1e-12)
    assert s["sortino"] == math.inf  # no losing bar


def test_summarize_from_plain_arrays() -> None:
    # equity 100 -> 110 -> 99: returns (0, 0.1, -0.1), drawdown 99 / 110 - 1 = -0.1 for 1 bar.
    s = m.summarize(
        [100.0, 110.0, 99.0],
        initial=100.0,
        trade_pnl=[-1.0],
        in_market=[False, True, True],
        traded_notional=[50.0, -50.0],
        ppy=12,
    )
    assert s["total_return"] == pytest.approx(-0.01)
    assert s["annual_return"] == pytest.approx(0.99**4 - 1)
    assert s["max_drawdown"] == pytest.approx(-0.1) and s["max_drawdown_duration"] == 1.0
    assert s["calmar"] == pytest.approx((0.99**4 - 1) / 0.1)
    assert s["profit_factor"] == 0.0 and s["hit_rate"] == 0.0 and s["avg_trade"] == -1.0
    assert s["exposure"] == pytest.approx(2 / 3)
    assert s["turnover"] == pytest.approx(100 / (309 / 3))
    assert s["volatility"] == pytest.approx(0.1 * math.sqrt(12))  # std of (0, .1, -.1) = 0.1


def test_summarize_without_trades() -> None:
    s = m.summarize(
        np.ones(5), initial=1.0, trade_pnl=[], in_market=np.zeros(5), traded_notional=[]
    )
    assert s["n_trades"] == 0.0 and s["sharpe"] == 0.0 and s["turnover"] == 0.0
    assert math.isnan(s["avg_trade"]) and math.isnan(s["hit_rate"])
    assert math.isnan(s["profit_factor"]) and s["exposure"] == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: m.total_return([], 1.0), "empty"),
        (lambda: m.total_return([1.0], 0.0), "initial must be finite and > 0"),
        (lambda: m.sharpe([0.1, 0.2], ppy=0), "ppy"),
        (lambda: m.drawdown(np.ones((2, 2))), "must be 1-D"),
        (
            lambda: m.summarize(
                [1.0, 1.0], initial=1.0, trade_pnl=[], in_market=[0.0], traded_notional=[]
            ),
            "equity has 2 bars but in_market has 1",
        ),
    ],
)
def test_validation_errors(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_read_only_inputs_not_mutated() -> None:
    curve = CURVE.copy()
    curve.setflags(write=False)
    m.drawdown(curve)
    m.returns_from_equity(curve, 100.0)
    m.summarize(curve, initial=100.0, trade_pnl=curve, in_market=curve, traded_notional=curve)
    np.testing.assert_array_equal(curve, CURVE)


def test_max_drawdown_duration_is_the_longest_run_below_the_running_peak() -> None:
    rng = np.random.default_rng(8)
    for _ in range(200):
        eq = np.cumsum(rng.choice([-1.0, 0.0, 1.0], size=int(rng.integers(1, 60)))) + 100.0
        peak, run, longest = -np.inf, 0, 0
        for x in eq:  # the definition, one bar at a time
            peak = max(peak, x)
            run = run + 1 if x < peak else 0
            longest = max(longest, run)
        assert m.max_drawdown_duration(eq) == longest
