"""Tests for the bar-by-bar backtest engine and the cost model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import (
    FILL_CLOSE,
    FILL_NEXT_OPEN,
    SIZING_FRACTION,
    SIZING_WHOLE,
    SimResult,
    simulate,
)

ATOL = 1e-12
NO_COST = CostModel(commission_bps=0.0, slippage_bps=0.0)


def close_to(actual: object, expected: object, atol: float = ATOL) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0.0, atol=atol)


# ---------------------------------------------------------------- CostModel


def test_cost_model_defaults_rates_and_scaling() -> None:
    cost = CostModel()
    assert (cost.commission_bps, cost.slippage_bps) == (1.0, 2.0)
    assert cost.commission_rate == pytest.approx(1e-4)
    assert cost.slippage_rate == pytest.approx(2e-4)
    doubled = cost.scaled(2.0)
    assert (doubled.commission_bps, doubled.slippage_bps) == (2.0, 4.0)
    assert cost == CostModel()  # scaled returns a new model, the original is untouched
    with pytest.raises(AttributeError):
        cost.commission_bps = 5.0  # type: ignore[misc]


@pytest.mark.parametrize("field", ["commission_bps", "slippage_bps"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_cost_model_rejects_bad_values(field: str, bad: float) -> None:
    with pytest.raises(ValueError, match=field):
        CostModel(**{field: bad})


def test_cost_model_scaled_rejects_negative_factor() -> None:
    with pytest.raises(ValueError, match="factor"):
        CostModel().scaled(-1.0)


# ---------------------------------------------------------------- hand-computed examples


def test_four_bar_long_trade_by_hand() -> None:
    # cash 100, commission 10 bps (c = 0.001), no slippage, fills at next open.
    # bar 0: nothing can fill yet -> cash 100, equity 100.
    # bar 1: target[0] = 1 fills at open 11: u = 100 / (11 * 1.001) = 100 / 11.011
    #        commission = u * 11 * 0.001 = 1.1 / 11.011; cash = 100 - 11u - 0.011u = 0
    #        equity = 11.5u = 1150 / 11.011
    # bar 2: target[1] = 1 is unchanged -> no fill; equity = 12.5u = 1250 / 11.011
    # bar 3: target[2] = 0 sells u at open 13: commission = 0.013u = 1.3 / 11.011
    #        cash = 13u - 0.013u = 1298.7 / 11.011; equity = cash
    # target[3] is on the last bar and is never filled.
    # trade pnl = 1298.7 / 11.011 - 100 = 197.6 / 11.011
    res = simulate(
        [10.0, 11.0, 12.0, 13.0],
        [10.5, 11.5, 12.5, 13.5],
        [1.0, 1.0, 0.0, 0.0],
        cash=100.0,
        cost=CostModel(commission_bps=10.0, slippage_bps=0.0),
    )
    u = 100 / 11.011
    close_to(res.units, [0.0, u, u, 0.0])
    close_to(res.cash, [100.0, 0.0, 0.0, 1298.7 / 11.011])
    close_to(res.equity, [100.0, 1150 / 11.011, 1250 / 11.011, 1298.7 / 11.011])
    assert res.fill_bar.tolist() == [1, 3]
    close_to(res.fill_units, [u, -u])
    close_to(res.fill_price, [11.0, 13.0])
    close_to(res.fill_commission, [1.1 / 11.011, 1.3 / 11.011])
    tr = res.trades
    assert len(tr) == 1
    assert tr.entry_bar.tolist() == [1] and tr.exit_bar.tolist() == [3]
    assert tr.direction.tolist() == [1] and tr.is_open.tolist() == [False]
    close_to(tr.units, [u])
    close_to(tr.entry_price, [11.0])
    close_to(tr.exit_price, [13.0])
    close_to(tr.pnl, [197.6 / 11.011])
    assert res.fill_bar.dtype == np.int64 and tr.direction.dtype == np.int8
    assert tr.is_open.dtype == np.bool_


def test_long_to_short_flip_by_hand() -> None:
    # cash 100, commission 10 bps, no slippage, target [1, -1, -1, -1].
    # bar 1: buy u1 = 100 / (10 * 1.001) = 100 / 10.01 at 10, commission 0.01 u1, cash 0.
    # bar 2: equity at open 12 is E = 12 u1; short size = E / (12 * 1.001) = u1 / 1.001.
    #        One sell of u1 + u1/1.001 at 12; its commission splits pro rata by units:
    #        closing part 0.012 u1, opening part 0.012 u1 / 1.001.
    #        long pnl = (12 - 10) u1 - 0.01 u1 - 0.012 u1 = 1.978 u1
    # bar 3: the short is still open, marked at the last close 12 without exit costs:
    #        short pnl = -0.012 u1 / 1.001
    res = simulate(
        [10.0, 10.0, 12.0, 12.0],
        [10.0, 11.0, 12.0, 12.0],
        [1.0, -1.0, -1.0, -1.0],
        cash=100.0,
        cost=CostModel(commission_bps=10.0, slippage_bps=0.0),
    )
    u1 = 100 / 10.01
    assert res.fill_bar.tolist() == [1, 2]
    close_to(res.fill_units, [u1, -(u1 + u1 / 1.001)])
    close_to(res.units, [0.0, u1, -u1 / 1.001, -u1 / 1.001])
    tr = res.trades
    assert tr.direction.tolist() == [1, -1]
    assert tr.entry_bar.tolist() == [1, 2] and tr.exit_bar.tolist() == [2, 3]
    assert tr.is_open.tolist() == [False, True]
    close_to(tr.units, [u1, u1 / 1.001])
    close_to(tr.entry_price, [10.0, 12.0])
    close_to(tr.exit_price, [12.0, 12.0])
    close_to(tr.pnl, [1.978 * u1, -0.012 * u1 / 1.001])
    close_to(tr.pnl.sum(), res.equity[-1] - 100.0)


def test_zero_cost_buy_and_hold_tracks_close_over_first_open() -> None:
    open_ = np.array([50.0, 52.0, 51.0, 55.0, 54.0])
    close = np.array([51.0, 51.5, 53.0, 54.0, 56.0])
    res = simulate(open_, close, np.ones(5), cash=1000.0, cost=NO_COST)
    # all-in at open[1] = 52 with no costs: units = 1000 / 52, equity = 1000 * close / 52
    expected = np.concatenate(([1000.0], 1000.0 * close[1:] / open_[1]))
    close_to(res.equity, expected, atol=1e-10)
    close_to(res.cash, [1000.0, 0.0, 0.0, 0.0, 0.0])
    assert len(res.fill_bar) == 1


def test_fill_close_fills_on_the_signal_bar() -> None:
    # target[1] = 1 fills at close[1] = 11 (no costs): u = 100 / 11; equity tracks close / 11.
    # target[3] = 0 sells at close[3] = 9 -> cash 900 / 11.
    close = np.array([10.0, 11.0, 12.0, 9.0])
    res = simulate(close, close, [0.0, 1.0, 1.0, 0.0], cash=100.0, cost=NO_COST, fill=FILL_CLOSE)
    assert res.fill_bar.tolist() == [1, 3]
    close_to(res.fill_price, [11.0, 9.0])
    close_to(res.equity, [100.0, 100.0, 1200 / 11, 900 / 11])
    # the same signal filled at the next open trades one bar later
    late = simulate(close, close, [0.0, 1.0, 1.0, 0.0], cash=100.0, cost=NO_COST)
    assert late.fill_bar.tolist() == [2]


def test_last_bar_target_is_never_filled_at_next_open() -> None:
    res = simulate([10.0, 10.0, 10.0], [10.0, 10.0, 10.0], [0.0, 0.0, 1.0], cash=1.0)
    assert res.fill_bar.size == 0 and len(res.trades) == 0
    close_to(res.equity, [1.0, 1.0, 1.0])


def test_slippage_worsens_buys_and_sells() -> None:
    # slippage 10 bps, no commission, flat price 10: buy at 10.01, sell at 9.99.
    # buy u = 100 / 10.01; sell proceeds = 100 * 9.99 / 10.01.
    flat = np.full(3, 10.0)
    res = simulate(flat, flat, [1.0, 0.0, 0.0], cash=100.0, cost=CostModel(0.0, 10.0))
    close_to(res.fill_price, [10.01, 9.99])
    close_to(res.fill_units, [100 / 10.01, -100 / 10.01])
    close_to(res.equity[-1], 100 * 9.99 / 10.01)
    close_to(res.trades.pnl, [100 * 9.99 / 10.01 - 100])


def test_short_sells_at_slipped_price_and_profits_from_a_fall() -> None:
    # slippage 10 bps, no commission: short at 10 * 0.999 = 9.99 with u = 100 / 9.99 units,
    # cover at 8 * 1.001 = 8.008 -> pnl = u * (9.99 - 8.008)
    res = simulate(
        [10.0, 10.0, 8.0], [10.0, 9.0, 8.0], [-1.0, 0.0, 0.0], cash=100.0, cost=CostModel(0.0, 10.0)
    )
    u = 100 / 9.99
    close_to(res.fill_price, [9.99, 8.008])
    close_to(res.fill_units, [-u, u])
    tr = res.trades
    assert tr.direction.tolist() == [-1] and tr.is_open.tolist() == [False]
    close_to(tr.pnl, [u * (9.99 - 8.008)])
    close_to(res.equity[-1], 100 + u * (9.99 - 8.008))
    close_to(res.units[-1], 0.0)


def test_open_trade_is_marked_at_last_close() -> None:
    # buy u = 100 / 10 at open[1] without costs; last close 15 -> pnl = 10 * 15 - 100 = 50
    res = simulate(
        [10.0, 10.0, 12.0], [10.0, 11.0, 15.0], [1.0, 1.0, 1.0], cash=100.0, cost=NO_COST
    )
    tr = res.trades
    assert tr.is_open.tolist() == [True] and tr.exit_bar.tolist() == [2]
    close_to(tr.exit_price, [15.0])
    close_to(tr.pnl, [50.0])


def test_nan_target_keeps_position() -> None:
    open_ = np.array([10.0, 11.0, 10.5, 12.0, 11.0, 11.5])
    close = np.array([10.5, 10.8, 11.2, 11.9, 11.1, 11.0])
    with_nan = simulate(open_, close, [0.5, np.nan, np.nan, 0.0, np.nan, np.nan], cash=10.0)
    explicit = simulate(open_, close, [0.5, 0.5, 0.5, 0.0, 0.0, 0.0], cash=10.0)
    np.testing.assert_array_equal(with_nan.equity, explicit.equity)
    np.testing.assert_array_equal(with_nan.fill_bar, explicit.fill_bar)
    # a leading NaN is "no decision" too: stay flat
    assert simulate(open_, close, np.full(6, np.nan)).fill_bar.size == 0


def test_constant_target_trades_once_despite_drift() -> None:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 50)))
    open_ = close * (1 + rng.normal(0, 0.005, 50))
    res = simulate(open_, close, np.full(50, 0.7), cash=1.0, cost=CostModel(5.0, 5.0))
    assert res.fill_bar.tolist() == [1]
    assert np.all(res.units[1:] == res.units[1])


def test_all_in_long_never_makes_cash_negative() -> None:
    rng = np.random.default_rng(1)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, 200)))
    open_ = close * (1 + rng.normal(0, 0.01, 200))
    target = rng.choice([0.0, 0.3, 1.0], size=200)
    res = simulate(open_, close, target, cash=3.7, cost=CostModel(25.0, 10.0))
    assert np.all(res.cash >= 0.0)
    assert res.fill_bar.size > 10


def test_whole_sizing_flip_reserves_the_closing_commission_by_hand() -> None:
    # cash 100, commission 10 bps, no slippage, whole units, target [1, -1, 0, 0].
    # bar 1: floor(100 / (10 * 1.001)) = floor(9.99) = 9 units at 10, commission 0.09,
    #        cash = 100 - 90 - 0.09 = 9.91.
    # bar 2: flip at 9.8. Cash once the long is closed: 9.91 + 88.2 - 0.0882 = 98.0218,
    #        short = floor(98.0218 / 9.8098) = floor(9.992) = 9 (without reserving the closing
    #        commission it would be floor(98.11 / 9.8098) = 10). One sell of 18 at 9.8,
    #        commission 0.1764; cash = 9.91 + 176.4 - 0.1764 = 186.1336.
    # bar 3: cover 9 at 9: commission 0.081, cash = 186.1336 - 81 - 0.081 = 105.0526.
    # long pnl = 9 * (9.8 - 10) - 0.09 - 0.0882 = -1.9782
    # short pnl = 9 * (9.8 - 9) - 0.0882 - 0.081 = 7.0308
    prices = [10.0, 10.0, 9.8, 9.0]
    res = simulate(
        prices,
        prices,
        [1.0, -1.0, 0.0, 0.0],
        cash=100.0,
        cost=CostModel(commission_bps=10.0, slippage_bps=0.0),
        sizing=SIZING_WHOLE,
    )
    assert res.units.tolist() == [0.0, 9.0, -9.0, 0.0]
    assert res.fill_units.tolist() == [9.0, -18.0, 9.0]
    close_to(res.fill_commission, [0.09, 0.1764, 0.081])
    close_to(res.cash, [100.0, 9.91, 186.1336, 105.0526])
    tr = res.trades
    assert tr.direction.tolist() == [1, -1] and tr.units.tolist() == [9.0, 9.0]
    assert tr.entry_bar.tolist() == [1, 2] and tr.exit_bar.tolist() == [2, 3]
    close_to(tr.pnl, [-1.9782, 7.0308])


def test_whole_sizing_skips_an_order_too_small_for_one_unit() -> None:
    res = simulate([10.0, 10.0], [10.0, 10.0], [1.0, 1.0], cash=9.99, sizing=SIZING_WHOLE)
    assert res.fill_bar.size == 0 and len(res.trades) == 0
    close_to(res.equity, [9.99, 9.99])


def test_fraction_sizing_is_the_default() -> None:
    args = ([10.0, 11.0, 12.0], [10.5, 11.5, 12.5], [1.0, -0.5, 0.0])
    default, explicit = simulate(*args), simulate(*args, sizing=SIZING_FRACTION)
    np.testing.assert_array_equal(default.equity, explicit.equity)
    np.testing.assert_array_equal(default.fill_units, explicit.fill_units)


# ---------------------------------------------------------------- properties

bars = st.integers(min_value=2, max_value=40)
targets = st.one_of(st.just(np.nan), st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]))


@st.composite
def markets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    n = draw(bars)
    price = st.floats(min_value=1.0, max_value=1000.0)
    open_ = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    close = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    target = np.array(draw(st.lists(targets, min_size=n, max_size=n)))
    t = draw(st.integers(min_value=0, max_value=n - 1))
    other = np.array(draw(st.lists(targets, min_size=n - t, max_size=n - t)))
    return open_, close, target, t, other


costs = st.builds(
    CostModel,
    commission_bps=st.sampled_from([0.0, 1.0, 20.0]),
    slippage_bps=st.sampled_from([0.0, 2.0, 30.0]),
)


def _same_prefix(a: SimResult, b: SimResult, stop: int) -> None:
    for name in ("equity", "units", "cash"):
        np.testing.assert_array_equal(getattr(a, name)[:stop], getattr(b, name)[:stop])


@settings(max_examples=150, deadline=None, database=None)
@given(market=markets(), cost=costs)
def test_next_open_decision_never_affects_its_own_bar(market: tuple, cost: CostModel) -> None:
    open_, close, target, t, other = market
    altered = target.copy()
    altered[t:] = other
    a = simulate(open_, close, target, cost=cost, fill=FILL_NEXT_OPEN)
    b = simulate(open_, close, altered, cost=cost, fill=FILL_NEXT_OPEN)
    _same_prefix(a, b, t + 1)
    np.testing.assert_array_equal(a.fill_bar[a.fill_bar <= t], b.fill_bar[b.fill_bar <= t])


@settings(max_examples=100, deadline=None, database=None)
@given(market=markets(), cost=costs)
def test_fill_close_decision_only_affects_its_bar_onward(market: tuple, cost: CostModel) -> None:
    open_, close, target, t, other = market
    altered = target.copy()
    altered[t:] = other
    a = simulate(open_, close, target, cost=cost, fill=FILL_CLOSE)
    b = simulate(open_, close, altered, cost=cost, fill=FILL_CLOSE)
    _same_prefix(a, b, t)


@settings(max_examples=150, deadline=None, database=None)
@given(market=markets(), cost=costs, fill=st.sampled_from([FILL_NEXT_OPEN, FILL_CLOSE]))
def test_accounting_invariants(market: tuple, cost: CostModel, fill: str) -> None:
    open_, close, target, _, _ = market
    res = simulate(open_, close, target, cash=1000.0, cost=cost, fill=fill)
    scale = 1e-9 * max(1000.0, float(np.abs(res.equity).max()), float(np.abs(res.cash).max()))
    # trade pnls (incl. an open trade marked to market) add up to the equity change
    close_to(res.trades.pnl.sum(), res.equity[-1] - 1000.0, atol=scale)
    close_to(res.equity, res.cash + res.units * close, atol=0.0)
    assert np.all(res.fill_commission >= 0.0)
    # slippage always works against the trader
    ref = (close if fill == FILL_CLOSE else open_)[res.fill_bar]
    assert np.all(np.where(res.fill_units > 0, res.fill_price >= ref, res.fill_price <= ref))
    assert len(np.unique(res.fill_bar)) == len(res.fill_bar)
    if fill == FILL_NEXT_OPEN:
        assert np.all(res.fill_bar >= 1)
    tr = res.trades
    assert np.all(tr.entry_bar <= tr.exit_bar) and np.sum(tr.is_open) <= 1
    assert (res.units[-1] != 0.0) == bool(tr.is_open.any())


@settings(max_examples=100, deadline=None, database=None)
@given(market=markets(), cost=costs)
def test_long_only_up_to_fully_invested_keeps_cash_non_negative(
    market: tuple, cost: CostModel
) -> None:
    open_, close, target, _, _ = market
    long_only = np.clip(target, 0.0, 1.0)
    res = simulate(open_, close, long_only, cash=1.0, cost=cost)
    assert np.all(res.cash >= 0.0)


@settings(max_examples=150, deadline=None, database=None)
@given(market=markets(), cost=costs, fill=st.sampled_from([FILL_NEXT_OPEN, FILL_CLOSE]))
def test_whole_sizing_holds_whole_units_and_keeps_the_books(
    market: tuple, cost: CostModel, fill: str
) -> None:
    open_, close, target, _, _ = market
    res = simulate(open_, close, target, cash=5000.0, cost=cost, fill=fill, sizing=SIZING_WHOLE)
    np.testing.assert_array_equal(res.units, np.round(res.units))
    scale = 1e-9 * max(5000.0, float(np.abs(res.equity).max()), float(np.abs(res.cash).max()))
    close_to(res.trades.pnl.sum(), res.equity[-1] - 5000.0, atol=scale)
    close_to(res.equity, res.cash + res.units * close, atol=0.0)
    # never more exposure than the fractional sizing of the same target would take
    frac = simulate(open_, close, target, cash=5000.0, cost=cost, fill=fill)
    first = frac.fill_bar[0] if frac.fill_bar.size else None
    if first is not None and res.fill_bar.size and res.fill_bar[0] == first:
        assert abs(res.fill_units[0]) <= abs(frac.fill_units[0])


@settings(max_examples=100, deadline=None, database=None)
@given(market=markets(), cost=costs)
def test_whole_sizing_long_only_keeps_cash_non_negative(market: tuple, cost: CostModel) -> None:
    open_, close, target, _, _ = market
    long_only = np.clip(target, 0.0, 1.0)
    res = simulate(open_, close, long_only, cash=5000.0, cost=cost, sizing=SIZING_WHOLE)
    assert np.all(res.cash >= 0.0)


# ---------------------------------------------------------------- inputs


def test_read_only_inputs_are_accepted_and_not_mutated() -> None:
    open_ = np.array([10.0, 11.0, 12.0, 13.0])
    close = np.array([10.5, 11.5, 12.5, 13.5])
    target = np.array([1.0, np.nan, -1.0, 0.0])
    copies = [a.copy() for a in (open_, close, target)]
    for a in (open_, close, target):
        a.setflags(write=False)
    res = simulate(open_, close, target, cash=100.0)
    for a, c in zip((open_, close, target), copies, strict=True):
        np.testing.assert_array_equal(a, c)
    writable = simulate(*(c.copy() for c in copies), cash=100.0)
    np.testing.assert_array_equal(res.equity, writable.equity)
    assert not res.equity.flags.writeable and not res.trades.pnl.flags.writeable


def test_accepts_lists_and_non_contiguous_views() -> None:
    wide = np.array([10.0, 0.0, 11.0, 0.0, 12.0, 0.0])
    res = simulate(wide[::2], [10.0, 11.0, 12.0], [1.0, 1.0, 1.0], cost=NO_COST)
    close_to(res.equity, [1.0, 1.0, 12.0 / 11.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"open_": [10.0, 11.0]}, "open has 2 bars but close has 3"),
        ({"target": [1.0, 1.0]}, "open has 3 bars but target has 2"),
        ({"close": [[10.0, 11.0, 12.0]]}, "close must be 1-D"),
        ({"target": np.ones((3, 1))}, "target must be 1-D"),
        ({"target": 1.0}, "target must be 1-D"),
        ({"open_": [10.0, np.nan, 12.0]}, r"open must be finite and > 0 \(bar 1 is nan\)"),
        ({"close": [10.0, 0.0, 12.0]}, r"close must be finite and > 0 \(bar 1"),
        ({"close": [10.0, 11.0, -1.0]}, "close must be finite and > 0"),
        ({"target": [1.0, np.inf, 0.0]}, "target must be finite or NaN"),
        ({"cash": 0.0}, "cash must be finite and > 0"),
        ({"cash": float("nan")}, "cash must be finite and > 0"),
        ({"fill": "open"}, "fill must be 'next_open' or 'close'"),
        ({"sizing": "lots"}, "sizing must be 'fraction' or 'whole'"),
        ({"cost": "cheap"}, "cost must be a CostModel"),
        (
            {"cost": CostModel(slippage_bps=10_000.0)},
            "adverse move at bar 0 is 100.00% of the price",
        ),
        ({"open_": [], "close": [], "target": []}, "0 bars"),
    ],
)
def test_validation_errors(kwargs: dict, match: str) -> None:
    args = {"open_": [10.0, 11.0, 12.0], "close": [10.0, 11.0, 12.0], "target": [1.0, 0.0, 1.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(args.pop("open_"), args.pop("close"), args.pop("target"), **args)
