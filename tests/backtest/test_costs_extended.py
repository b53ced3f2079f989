"""The frictions beyond bps commission and slippage, each against a hand-computed account."""

from __future__ import annotations

import numpy as np
import pytest

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import simulate
from mlalgo.config import CostConfig

FLAT = [100.0] * 5


def test_borrow_is_charged_on_the_short_at_every_close() -> None:
    # 2520 bps a year over 252 bars: 0.1 % of the short's value per close, 0.10 on 100.
    cost = CostModel(commission_bps=0, slippage_bps=0, borrow_bps=2520)
    res = simulate(FLAT, FLAT, [-1.0] * 5, cash=100.0, cost=cost, fill="close")
    assert res.units.tolist() == [-1.0] * 5
    assert res.borrow.tolist() == pytest.approx([0.1] * 5)
    assert res.equity[-1] == pytest.approx(100.0 - 0.5)
    assert res.trades.pnl.tolist() == pytest.approx([-0.5])  # still open: marked, borrow paid


def test_borrow_stops_with_the_short_and_longs_pay_none() -> None:
    cost = CostModel(commission_bps=0, slippage_bps=0, borrow_bps=2520)
    # short decided at bar 0 (filled open 1), covered at bar 2 (filled open 3), long after.
    res = simulate(FLAT, FLAT, [-1.0, -1.0, 1.0, 1.0, 1.0], cash=100.0, cost=cost)
    # The long is sized on what is left after two closes of borrow: 99.8 / 100.
    assert res.units.tolist() == pytest.approx([0.0, -1.0, -1.0, 0.998, 0.998])
    assert res.borrow.tolist() == pytest.approx([0.0, 0.1, 0.1, 0.0, 0.0])
    assert res.trades.pnl[0] == pytest.approx(-0.2)  # the short paid two closes of borrow


def test_a_fixed_commission_is_paid_per_fill_and_reserved() -> None:
    # 101 cash, 1.00 a ticket: 100 is left to invest at 10, so 10 units and no cash left.
    cost = CostModel(commission_bps=0, slippage_bps=0, commission_fixed=1.0)
    res = simulate([10.0] * 3, [10.0] * 3, [1.0, 1.0, 0.0], cash=101.0, cost=cost, fill="close")
    assert res.units.tolist() == [10.0, 10.0, 0.0]
    assert res.fill_commission.tolist() == [1.0, 1.0]
    assert res.cash[0] == pytest.approx(0.0) and res.equity[-1] == pytest.approx(99.0)


def test_half_spread_adds_to_the_adverse_move_of_both_sides() -> None:
    cost = CostModel(commission_bps=0, slippage_bps=2, half_spread_bps=3)
    res = simulate([100.0] * 3, [100.0] * 3, [1.0, 0.0, 0.0], cash=1000.0, cost=cost)
    assert res.fill_price.tolist() == pytest.approx([100.05, 99.95])


def test_volatility_slippage_uses_only_returns_known_at_the_fill() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 100.0, 103.0])
    cost = CostModel(commission_bps=0, slippage_bps=1, slippage_vol=0.5, vol_window=3)
    r = np.diff(np.log(close))
    sd = [np.std(r[i - 3 : i], ddof=1) for i in (3, 4, 5)]  # through closes 3, 4, 5
    at_open = cost.adverse_rates(close, fill_at_close=False)
    at_close = cost.adverse_rates(close, fill_at_close=True)
    assert at_close.tolist() == pytest.approx([1e-4] * 3 + [1e-4 + 0.5 * s for s in sd])
    assert at_open.tolist() == pytest.approx([1e-4] * 4 + [1e-4 + 0.5 * s for s in sd[:2]])


def test_scaled_scales_every_friction_and_keeps_the_window() -> None:
    cost = CostModel(
        1, 2, commission_fixed=3, half_spread_bps=4, slippage_vol=0.5, vol_window=7, borrow_bps=50
    )
    double = cost.scaled(2.0)
    assert double == CostModel(
        2, 4, commission_fixed=6, half_spread_bps=8, slippage_vol=1.0, vol_window=7, borrow_bps=100
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"commission_fixed": -1.0}, "commission_fixed must be finite and >= 0"),
        ({"borrow_bps": float("nan")}, "borrow_bps must be finite"),
        ({"vol_window": 1}, "vol_window must be >= 2"),
        ({"half_spread_bps": "3"}, "half_spread_bps must be a number"),
    ],
)
def test_bad_costs_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CostModel(**kwargs)


def test_the_pipeline_config_builds_the_same_model() -> None:
    cfg = CostConfig(commission_fixed=1.5, half_spread_bps=2, borrow_bps=30)
    assert cfg.cost_model() == CostModel(commission_fixed=1.5, half_spread_bps=2, borrow_bps=30)
