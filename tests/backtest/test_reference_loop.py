"""The numba engine against a plain per-bar loop written from its documented rules.

The loop below is the specification in Python: a decision at bar t's close fills at bar t+1's
open (or at t's close with ``fill="close"``); the account trades only when the target changes;
equity at the fill price is sized at the slipped price with the commission reserved; buys pay
the slippage, sells give it up; commission is charged on the slipped notional. Random targets
(NaN, shorts, fractions, reversals) and random costs must give identical equity, units and cash.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import simulate


def reference(
    open_: list[float],
    close: list[float],
    target: list[float],
    cash: float,
    cost: CostModel,
    at_close: bool,
    ppy: float = 252,
) -> tuple[list[float], list[float], list[float]]:
    comm, fixed, borrow = cost.commission_rate, cost.commission_fixed, cost.borrow_bps * 1e-4 / ppy
    log_r = [math.log(close[i] / close[i - 1]) for i in range(1, len(close))]
    w = cost.vol_window

    def vol_through(t: int) -> float:  # std of the w returns ending at close t, 0 before
        if t < w:
            return 0.0
        window = log_r[t - w : t]
        mean = sum(window) / w
        return math.sqrt(sum((x - mean) ** 2 for x in window) / (w - 1))

    units, last = 0.0, 0.0
    equity, held, cash_out = [], [], []
    for t in range(len(close)):
        if at_close:
            signal, price = target[t], close[t]
        else:
            signal = target[t - 1] if t > 0 else math.nan
            price = open_[t]
        if not math.isnan(signal) and signal != last:
            last = signal
            value = cash + units * price
            known = vol_through(t) if at_close else (vol_through(t - 1) if t > 0 else 0.0)
            slip = cost.slippage_rate + cost.slippage_vol * known
            buy_px, sell_px = price * (1 + slip), price * (1 - slip)
            free = value - fixed
            if free > 0:
                long_size = signal * free / (buy_px * (1 + comm))
                short_size = signal * free / (sell_px * (1 + comm))
            else:
                long_size = short_size = 0.0
            if long_size > units:
                new, px = long_size, buy_px
            elif short_size < units:
                new, px = short_size, sell_px
            else:
                new, px = units, price
            traded = new - units
            if traded != 0.0:
                fee = abs(traded) * px * comm + fixed
                cash = cash - traded * px - fee
                if -1e-12 * abs(value) < cash < 0.0:
                    cash = 0.0
                units = new
        if units < 0 and borrow > 0:
            cash -= -units * close[t] * borrow
        equity.append(cash + units * close[t])
        held.append(units)
        cash_out.append(cash)
    return equity, held, cash_out


def random_market(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.01, n))
    return open_, close


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_engine_equals_the_reference_loop(seed: int, fill: str) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    open_, close = random_market(rng, n)
    choices = np.array([np.nan, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5])
    target = rng.choice(choices, size=n, p=[0.3, 0.1, 0.1, 0.15, 0.1, 0.15, 0.1])
    cost = CostModel(
        commission_bps=float(rng.choice([0.0, 1.0, 10.0, 35.5])),
        slippage_bps=float(rng.choice([0.0, 2.0, 25.0])),
        commission_fixed=float(rng.choice([0.0, 1.0, 9.99])),
        half_spread_bps=float(rng.choice([0.0, 0.5, 5.0])),
        slippage_vol=float(rng.choice([0.0, 0.1, 0.5])),
        vol_window=int(rng.choice([5, 20])),
        borrow_bps=float(rng.choice([0.0, 30.0, 500.0])),
    )
    cash = float(rng.uniform(1_000, 1_000_000))
    res = simulate(open_, close, target, cash=cash, cost=cost, fill=fill)
    equity, units, cash_out = reference(
        open_.tolist(), close.tolist(), target.tolist(), cash, cost, fill == "close"
    )
    if cost.slippage_vol == 0.0:  # the same arithmetic in the same order: bit for bit
        np.testing.assert_array_equal(res.units, units)
        np.testing.assert_array_equal(res.cash, cash_out)
        np.testing.assert_array_equal(res.equity, equity)
    else:  # the loop's volatility sums in another order, so the last bits may differ
        np.testing.assert_allclose(res.units, units, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(res.cash, cash_out, rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(res.equity, equity, rtol=1e-12, atol=1e-6)
    # The fills account for every change of position, and the money adds up.
    assert np.count_nonzero(np.diff(np.r_[0.0, res.units])) == len(res.fill_bar)
    spent = np.sum(res.fill_units * res.fill_price) + np.sum(res.fill_commission)
    assert cash - spent - res.borrow.sum() == pytest.approx(res.cash[-1], rel=1e-9, abs=1e-6)
    # Trades account for every cent: their PnL (borrow included) is the equity's change.
    assert res.trades.pnl.sum() == pytest.approx(res.equity[-1] - cash, rel=1e-9, abs=1e-6)


def test_engine_equals_the_reference_loop_on_real_prices(sample_bars) -> None:
    bars = sample_bars.xs("MSFT", level="symbol")
    rng = np.random.default_rng(99)
    target = rng.choice([np.nan, -1.0, 0.0, 1.0], size=len(bars), p=[0.7, 0.1, 0.1, 0.1])
    cost = CostModel(commission_bps=1.0, slippage_bps=2.0)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    res = simulate(o, c, target, cash=100_000.0, cost=cost)
    equity, _, _ = reference(o.tolist(), c.tolist(), target.tolist(), 100_000.0, cost, False)
    np.testing.assert_array_equal(res.equity, equity)
    assert len(res.fill_bar) > 100  # the check covers many trades, reversals included
