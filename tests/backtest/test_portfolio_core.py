"""The numba core against the plain-Python account in ``reference_portfolio``, on random books.

Every case draws a market of one to four instruments with absent bars (before an instrument's
first bar and scattered later), random targets (NaN, shorts, fractions, flips, held for a few
bars so stops and trailing stops get their chance), random costs, a sizing mode, random exits
and account limits, and single-bar or multi-bar days. The core must reproduce the reference's
equity, cash, units, fills, trades and kill bar: bit for bit where both do the same arithmetic
in the same order, within a relative 1e-12 where they sum in another order (the volatility of
volatility slippage; equity with borrow on one of several instruments, which the core charges
while it adds up the positions).

Whatever the reference says, the books must also balance on their own: the cash is the
starting cash less every fill's notional, commission and borrow; the trades' PnL is the
change of equity; nothing trades after the kill switch but the flatten; no decision taken on
a day after its daily-loss breach trades.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from backtest.reference_portfolio import (
    DAILY_LOSS,
    KILL_SWITCH,
    REASON_NAMES,
    SIGNAL,
    Result,
    reference_portfolio,
)

from mlalgo.backtest.core import EXIT_REASONS
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.portfolio import PortfolioSim, RiskLimits, simulate_portfolio

SIZINGS = ("fraction", "whole", "units")
FILLS = ("next_open", "close")
SEEDS = range(8)
RTOL = 1e-12
PPY = 252.0


@dataclass(frozen=True)
class Case:
    open_: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    target: np.ndarray
    day: np.ndarray
    cash: float
    cost: CostModel
    fill: str
    sizing: str
    unit_size: float
    min_trade: float
    limits: RiskLimits

    def run_core(self) -> PortfolioSim:
        return simulate_portfolio(
            self.open_,
            self.high,
            self.low,
            self.close,
            self.target,
            day=self.day,
            cash=self.cash,
            cost=self.cost,
            fill=self.fill,
            sizing=self.sizing,
            unit_size=self.unit_size,
            min_trade=self.min_trade,
            limits=self.limits,
            periods_per_year=PPY,
        )

    def run_reference(self) -> Result:
        return reference_portfolio(
            self.open_.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.target.tolist(),
            day=self.day.tolist(),
            cash=self.cash,
            cost=self.cost,
            fill=self.fill,
            sizing=self.sizing,
            unit_size=self.unit_size,
            min_trade=self.min_trade,
            limits=self.limits,
            periods_per_year=PPY,
        )

    @property
    def exact(self) -> bool:
        """Whether both sides do the same arithmetic in the same order."""
        m = self.close.shape[1]
        return self.cost.slippage_vol == 0.0 and (self.cost.borrow_bps == 0.0 or m == 1)


def maybe(rng: np.random.Generator, low: float, high: float, p: float = 0.5) -> float | None:
    return float(rng.uniform(low, high)) if rng.random() < p else None


def random_case(seed: int, fill: str, sizing: str) -> Case:
    rng = np.random.default_rng([seed, FILLS.index(fill), SIZINGS.index(sizing)])
    n = int(rng.integers(60, 160))
    m = int(rng.integers(1, 5))
    # prices: a random walk per instrument with overnight gaps and wicks
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0.0, 0.01, (n, m)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, (n, m))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, (n, m))))
    if rng.random() < 0.5:  # prices on a cent grid: exact ties between levels and prices
        open_, high, low, close = (np.round(a, 2) for a in (open_, high, low, close))
    # absent bars: an instrument may start late, and miss bars later
    absent = rng.random((n, m)) < rng.uniform(0.0, 0.15)
    for i in range(m):
        absent[: int(rng.integers(0, n // 4)), i] = True
    for arr in (open_, high, low, close):
        arr[absent] = np.nan
    # targets held for a few bars; NaN keeps the position
    choices = np.array([np.nan, -1.0, -0.5, 0.0, 0.3, 0.7, 1.0, 1.5])
    blocks = rng.choice(choices, size=(n // 3 + 1, m), p=[0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    target = np.repeat(blocks, 3, axis=0)[:n] * rng.choice([1.0, 1.0, 3.0])  # 3: heavy leverage
    target[rng.random((n, m)) < 0.1] = np.nan
    day = np.cumsum(rng.random(n) < rng.choice([1.0, 0.4, 0.2])).astype(np.int64)
    cost = CostModel(
        commission_bps=float(rng.choice([0.0, 1.0, 10.0])),
        slippage_bps=float(rng.choice([0.0, 2.0, 20.0])),
        commission_fixed=float(rng.choice([0.0, 1.0, 5.0])),
        half_spread_bps=float(rng.choice([0.0, 3.0])),
        slippage_vol=float(rng.choice([0.0, 0.0, 0.3])),
        vol_window=int(rng.choice([3, 10])),
        borrow_bps=float(rng.choice([0.0, 50.0, 2000.0])),
    )
    limits = RiskLimits(
        stop_loss=maybe(rng, 0.005, 0.05),
        take_profit=maybe(rng, 0.01, 0.08),
        trailing_stop=maybe(rng, 0.005, 0.05),
        max_drawdown=maybe(rng, 0.05, 0.3, p=0.4),
        max_daily_loss=maybe(rng, 0.005, 0.04, p=0.4),
        max_position=maybe(rng, 0.2, 1.2),
        max_leverage=maybe(rng, 0.5, 2.0),
    )
    return Case(
        open_=open_,
        high=high,
        low=low,
        close=close,
        target=target,
        day=day,
        cash=float(rng.choice([300.0, 5_000.0, 500_000.0]) * rng.uniform(1.0, 2.0)),
        cost=cost,
        fill=fill,
        sizing=sizing,
        unit_size=float(rng.choice([1.0, 7.0, 25.0])),
        min_trade=float(rng.choice([0.0, 0.0, 0.01, 0.05])),
        limits=limits,
    )


CASES = [(seed, fill, sizing) for seed in SEEDS for fill in FILLS for sizing in SIZINGS]


@pytest.fixture(scope="module")
def runs() -> dict[tuple[int, str, str], tuple[Case, PortfolioSim, Result]]:
    out = {}
    for key in CASES:
        case = random_case(*key)
        out[key] = (case, case.run_core(), case.run_reference())
    return out


def test_the_reference_names_the_exit_reasons_as_the_core_does() -> None:
    assert REASON_NAMES == EXIT_REASONS


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES)
def test_core_equals_the_reference(runs: dict, seed: int, fill: str, sizing: str) -> None:
    case, sim, ref = runs[seed, fill, sizing]
    assert sim.killed_at == ref.killed_at
    fills = np.array(ref.fills, dtype=np.float64).reshape(-1, 6)
    trades = np.array(ref.trades, dtype=np.float64).reshape(-1, 11)
    # which bar, which instrument, why: exactly
    np.testing.assert_array_equal(sim.fills.bar, fills[:, 0])
    np.testing.assert_array_equal(sim.fills.asset, fills[:, 1])
    np.testing.assert_array_equal(sim.fills.reason, fills[:, 5])
    t = sim.trades
    for got, col in ((t.asset, 0), (t.entry_bar, 1), (t.exit_bar, 2), (t.direction, 3)):
        np.testing.assert_array_equal(got, trades[:, col])
    np.testing.assert_array_equal(t.exit_reason, trades[:, 10])
    # how much, at what price
    pairs = [
        (sim.equity, ref.equity),
        (sim.cash, ref.cash),
        (sim.units, np.array(ref.units)),
        (sim.fills.units, fills[:, 2]),
        (sim.fills.price, fills[:, 3]),
        (sim.fills.commission, fills[:, 4]),
        (t.units, trades[:, 4]),
        (t.entry_price, trades[:, 5]),
        (t.exit_price, trades[:, 6]),
        (t.pnl, trades[:, 7]),
        (t.commission, trades[:, 8]),
        (t.borrow, trades[:, 9]),
    ]
    for got, want in pairs:
        if case.exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * case.cash)


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES)
def test_the_money_adds_up(runs: dict, seed: int, fill: str, sizing: str) -> None:
    case, sim, _ = runs[seed, fill, sizing]
    f, t = sim.fills, sim.trades
    spent = np.sum(f.units * f.price) + np.sum(f.commission) + np.sum(t.borrow)
    scale = case.cash + np.sum(np.abs(f.units * f.price))
    assert case.cash - spent == pytest.approx(sim.cash[-1], rel=0.0, abs=1e-11 * scale)
    assert np.sum(t.pnl) == pytest.approx(sim.equity[-1] - case.cash, rel=0.0, abs=1e-11 * scale)
    # every change of position is a fill, and the fills add up to the position
    held = np.zeros(case.close.shape[1])
    for bar in range(len(sim.equity)):
        mine = f.bar == bar
        np.add.at(held, f.asset[mine], f.units[mine])
        np.testing.assert_allclose(sim.units[bar], held, rtol=1e-12, atol=1e-9)
    # and nothing fills without a bar
    assert not np.isnan(case.open_[f.bar, f.asset]).any()


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES)
def test_nothing_trades_after_the_kill_switch_but_the_flatten(
    runs: dict, seed: int, fill: str, sizing: str
) -> None:
    case, sim, _ = runs[seed, fill, sizing]
    k = sim.killed_at
    if k < 0:
        assert (
            case.limits.max_drawdown is None
            or (
                sim.equity
                > np.maximum.accumulate(np.r_[case.cash, sim.equity])[1:]
                * (1.0 - case.limits.max_drawdown)
            ).all()
        )
        return
    f = sim.fills
    # Fills at the next open: from bar k + 1 on. Fills at the close: the breach flattens at
    # close k itself, after that close's own decisions (step 5 comes before step 7).
    first = k + 1 if fill == "next_open" else k
    later = f.bar > k
    assert (f.reason[later] == KILL_SWITCH).all()
    assert (f.reason[f.bar < first] != KILL_SWITCH).all()
    at_k = f.reason[f.bar == k]
    assert (np.sort(at_k == KILL_SWITCH) == (at_k == KILL_SWITCH)).all()  # flattens last
    flatten = f.reason == KILL_SWITCH
    assert len(np.unique(f.asset[flatten])) == flatten.sum()  # one flatten per instrument
    for i in range(case.close.shape[1]):
        bars = np.flatnonzero(~np.isnan(case.open_[first:, i])) + first
        if bars.size:  # flat from its first bar after the breach onwards
            assert (sim.units[bars[0] :, i] == 0.0).all()
    # equity stays above the limit before the breach bar
    limit = case.limits.max_drawdown
    assert limit is not None
    peaks = np.maximum.accumulate(np.r_[case.cash, sim.equity[:k]])[1:]
    assert (sim.equity[:k] > peaks * (1.0 - limit)).all()
    if fill == "next_open":  # (with close fills equity[k] is after the flatten's costs)
        assert sim.equity[k] <= max(peaks.max(initial=case.cash), sim.equity[k]) * (1.0 - limit)


def halted_from(case: Case, sim: PortfolioSim) -> dict[int, int]:
    """The first bar of each day whose close breached the daily-loss limit (before a kill)."""
    limit = case.limits.max_daily_loss
    assert limit is not None
    day = case.day
    end = len(day) if sim.killed_at < 0 else sim.killed_at
    out: dict[int, int] = {}
    start = case.cash
    for t in range(end):
        if t > 0 and day[t] != day[t - 1]:
            start = sim.equity[t - 1]
        if sim.equity[t] <= start * (1.0 - limit):
            out.setdefault(int(day[t]), t)
    return out


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES)
def test_no_decision_of_a_halted_day_trades(runs: dict, seed: int, fill: str, sizing: str) -> None:
    case, sim, _ = runs[seed, fill, sizing]
    if case.limits.max_daily_loss is None:
        assert (sim.fills.reason != DAILY_LOSS).all()
        return
    halted = halted_from(case, sim)
    f = sim.fills
    lag = 1 if fill == "next_open" else 0
    for bar in f.bar[f.reason == SIGNAL]:
        decided = bar - lag
        breach = halted.get(int(case.day[decided]))
        # with close fills the breach bar's own decision fills before the limits are checked
        assert breach is None or decided < breach + (1 - lag)
    # the breach flattens every instrument that has a bar to do it on
    for breach in halted.values():
        at = breach + lag
        if at < len(sim.equity):
            present = ~np.isnan(case.open_[at])
            assert (sim.units[at, present] == 0.0).all()


def test_the_random_cases_reach_every_rule(runs: dict) -> None:
    reasons: set[int] = set()
    delayed = killed = open_at_end = absent_marks = 0
    for case, sim, _ in runs.values():
        f = sim.fills
        reasons |= set(f.reason.tolist())
        killed += sim.killed_at >= 0
        open_at_end += int(sim.trades.is_open.sum())
        lag = 1 if case.fill == "next_open" else 0
        if sim.killed_at >= 0:  # a flatten that waited for the instrument's next bar
            delayed += int(((f.reason == KILL_SWITCH) & (f.bar > sim.killed_at + lag)).sum())
        held = sim.units != 0.0
        absent_marks += int((held & np.isnan(case.close)).sum())  # held over an absent bar
    assert reasons == set(range(6))  # signal, both stops, take-profit, kill switch, daily loss
    assert killed >= 5
    assert delayed >= 1
    assert open_at_end >= 10
    assert absent_marks >= 10
