"""The paper account, stepped one row at a time, is the backtest: same fills, trades,
positions, cash and equity, bit for bit.

Random books reach every option of the engine (sizings, fills, costs with volatility
slippage and borrow, exits, account limits, absent bars); the real AAPL and MSFT sample goes
through ``mlalgo.backtest.run`` with a config, as a researcher would backtest it, and row by
row through the account, as the live loop would replay it.
"""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest import run
from mlalgo.backtest.core import EXIT_REASONS
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.portfolio import PortfolioSim, RiskLimits, simulate_portfolio
from mlalgo.config import BacktestConfig, CostConfig, RiskConfig
from mlalgo.data.sample import load_sample
from mlalgo.live import paper
from mlalgo.live.paper import TRADE_COLUMNS, PaperAccount, utc_day

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
PPY = 252.0
SIZINGS = ("fraction", "whole", "units")
FILLS = ("next_open", "close")
LIMITS = (
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "max_drawdown",
    "max_daily_loss",
    "max_position",
    "max_leverage",
)


@dataclass(frozen=True)
class Book:
    """Arrays (rows x symbols) and the account's settings, for both sides."""

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

    def backtest(self) -> PortfolioSim:
        return simulate_portfolio(
            self.open_,
            self.high,
            self.low,
            self.close,
            self.target,
            day=self.day if self.limits.max_daily_loss is not None else None,
            cash=self.cash,
            cost=self.cost,
            fill=self.fill,
            sizing=self.sizing,
            unit_size=self.unit_size,
            min_trade=self.min_trade,
            limits=self.limits,
            periods_per_year=PPY,
        )

    def replay(self) -> tuple[PaperAccount, list[list]]:
        """Every row through a fresh account; also the fills each step returned."""
        symbols = [f"S{i}" for i in range(self.close.shape[1])]
        acct = PaperAccount.from_cost_model(
            symbols,
            self.cost,
            periods_per_year=PPY,
            cash=self.cash,
            fill=self.fill,
            sizing=self.sizing,
            unit_size=self.unit_size,
            min_trade=self.min_trade,
            **{k: getattr(self.limits, k) for k in LIMITS},
        )
        returned = []
        for t in range(self.close.shape[0]):
            row = (a[t] for a in (self.open_, self.high, self.low, self.close, self.target))
            returned.append(acct.step(60_000 * t, int(self.day[t]), *row))
        return acct, returned


def maybe(rng: np.random.Generator, low: float, high: float, p: float = 0.5) -> float | None:
    return float(rng.uniform(low, high)) if rng.random() < p else None


def random_book(seed: int, fill: str, sizing: str) -> Book:
    rng = np.random.default_rng([7, seed, FILLS.index(fill), SIZINGS.index(sizing)])
    n = int(rng.integers(60, 200))
    m = int(rng.integers(1, 5))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0.0, 0.01, (n, m)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, (n, m))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, (n, m))))
    if rng.random() < 0.5:  # a cent grid: exact ties between levels and prices
        open_, high, low, close = (np.round(a, 2) for a in (open_, high, low, close))
    absent = rng.random((n, m)) < rng.uniform(0.0, 0.15)
    for i in range(m):
        absent[: int(rng.integers(0, n // 4)), i] = True  # a late listing
    for arr in (open_, high, low, close):
        arr[absent] = np.nan
    choices = np.array([np.nan, -1.0, -0.5, 0.0, 0.3, 0.7, 1.0, 1.5])
    blocks = rng.choice(choices, size=(n // 3 + 1, m), p=[0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    target = np.repeat(blocks, 3, axis=0)[:n] * rng.choice([1.0, 1.0, 3.0])
    target[rng.random((n, m)) < 0.1] = np.nan
    day = np.cumsum(rng.random(n) < rng.choice([1.0, 0.4, 0.2])).astype(np.int64)
    cost = CostModel(
        commission_bps=float(rng.choice([0.0, 1.0, 10.0])),
        slippage_bps=float(rng.choice([0.0, 2.0, 20.0])),
        commission_fixed=float(rng.choice([0.0, 1.0, 5.0])),
        half_spread_bps=float(rng.choice([0.0, 3.0])),
        slippage_vol=float(rng.choice([0.0, 0.3, 1.0])),
        vol_window=int(rng.choice([2, 3, 10, 20])),
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
    return Book(
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


def assert_same(acct: PaperAccount, sim: PortfolioSim) -> None:
    """Everything the backtest reports, from the account: exactly."""
    equity, cash, units = acct.history()
    np.testing.assert_array_equal(equity, sim.equity)
    np.testing.assert_array_equal(cash, sim.cash)
    np.testing.assert_array_equal(units, sim.units)
    assert acct.equity == sim.equity[-1]
    assert acct.cash == sim.cash[-1]
    np.testing.assert_array_equal(acct.units, sim.units[-1])
    assert acct.killed_at == sim.killed_at
    assert acct.killed == (sim.killed_at >= 0)
    f, rows = sim.fills, acct.fill_rows()
    for col, want in enumerate((f.bar, f.asset, f.units, f.price, f.commission, f.reason)):
        np.testing.assert_array_equal(rows[:, col], want)
    tr, got = sim.trades, acct.trades(final=True)
    for col, name in enumerate(TRADE_COLUMNS):
        field = {"entry_row": "entry_bar", "exit_row": "exit_bar"}.get(name, name)
        np.testing.assert_array_equal(got[:, col], getattr(tr, field), err_msg=name)
    closed = acct.trades()
    np.testing.assert_array_equal(closed, got[~tr.is_open])  # open ones come last


CASES = [(seed, fill, sizing) for seed in range(10) for fill in FILLS for sizing in SIZINGS]


@pytest.fixture(scope="module")
def replays() -> dict[tuple[int, str, str], tuple[Book, PaperAccount, list, PortfolioSim]]:
    out = {}
    for key in CASES:
        book = random_book(*key)
        acct, returned = book.replay()
        out[key] = (book, acct, returned, book.backtest())
    return out


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES)
def test_stepping_rows_equals_the_backtest(
    replays: dict, seed: int, fill: str, sizing: str
) -> None:
    _, acct, _, sim = replays[seed, fill, sizing]
    assert_same(acct, sim)


@pytest.mark.parametrize(("seed", "fill", "sizing"), CASES[:12])
def test_each_step_returns_its_own_rows_fills_by_name(
    replays: dict, seed: int, fill: str, sizing: str
) -> None:
    book, acct, returned, _ = replays[seed, fill, sizing]
    assert [f for fills in returned for f in fills] == acct.fills
    assert acct.n_fills == len(acct.fills)
    for t, fills in enumerate(returned):
        assert all(f.row == t and f.open_ms == 60_000 * t for f in fills)
    rows = acct.fill_rows()
    for f, row in zip(acct.fills, rows, strict=True):
        assert f.symbol == acct.symbols[int(row[1])]
        assert (f.units, f.price, f.commission) == (row[2], row[3], row[4])
        assert f.reason == EXIT_REASONS[int(row[5])]
    assert acct.rows == book.close.shape[0]


def test_the_random_books_reach_every_rule(replays: dict) -> None:
    reasons: set[str] = set()
    killed = vol_slipped = gapped = 0
    for book, acct, _, _ in replays.values():
        reasons |= {f.reason for f in acct.fills}
        killed += acct.killed
        vol_slipped += book.cost.slippage_vol > 0 and len(acct.fills) > 0
        gapped += bool(np.isnan(book.close).any())
    assert reasons == set(EXIT_REASONS) - {"open"}
    assert killed >= 3
    assert vol_slipped >= 10
    assert gapped >= 20
    assert max(acct.rows for _, acct, _, _ in replays.values()) > 128  # arrays grew


def test_open_trades_are_marked_without_changing_the_account(replays: dict) -> None:
    open_code = EXIT_REASONS.index("open")
    holding = [acct for _, acct, _, _ in replays.values() if acct.units.any()]
    assert len(holding) >= 10
    for acct in holding:
        closed = acct.trades()
        final = acct.trades(final=True)
        assert (final[:, 10] == open_code).sum() == np.count_nonzero(acct.units)
        np.testing.assert_array_equal(final[: len(closed)], closed)
        np.testing.assert_array_equal(acct.trades(final=True), final)  # nothing was booked
        np.testing.assert_array_equal(acct.trades(), closed)


def test_a_bad_row_is_refused_and_changes_nothing() -> None:
    book = random_book(5, "next_open", "whole")
    half = book.close.shape[0] // 2
    acct = PaperAccount.from_cost_model(
        [f"S{i}" for i in range(book.close.shape[1])],
        book.cost,
        periods_per_year=PPY,
        cash=book.cash,
        sizing=book.sizing,
        min_trade=book.min_trade,
        **{k: getattr(book.limits, k) for k in LIMITS},
    )
    for t in range(book.close.shape[0]):
        row = [a[t].copy() for a in (book.open_, book.high, book.low, book.close, book.target)]
        if t == half:
            bad = [x.copy() for x in row]
            bad[1][:] = bad[3] * 0.5  # a high below the close
            with pytest.raises(ValueError, match="high below its open or close"):
                acct.step(60_000 * t, int(book.day[t]), *bad)
            with pytest.raises(ValueError, match="not after the previous row"):
                acct.step(60_000 * (t - 1), int(book.day[t]), *row)
            with pytest.raises(ValueError, match="one value per symbol"):
                acct.step(60_000 * t, int(book.day[t]), *[x[:0] for x in row])
        acct.step(60_000 * t, int(book.day[t]), *row)
    assert_same(acct, book.backtest())


def test_settings_are_checked_when_the_account_is_made() -> None:
    with pytest.raises(ValueError, match="fill must be"):
        PaperAccount(["A"], fill="open")
    with pytest.raises(ValueError, match="stop_loss must be between 0 and 1"):
        PaperAccount(["A"], stop_loss=1.5)
    with pytest.raises(ValueError, match="distinct"):
        PaperAccount(["A", "A"])


# ------------------------------------------------------------------ the real sample


def real_bars() -> pd.DataFrame:
    """AAPL and MSFT, with some MSFT bars dropped so the calendars differ.

    The times are made nanosecond: the runner's day labels (``_days``) divide ``asi8`` by
    the nanoseconds of a day, which on the sample's microsecond index lumps ~1000 days into
    one label; on nanoseconds they are the UTC calendar days the live account uses.
    """
    bars = load_sample(["AAPL", "MSFT"], root=SAMPLE)
    bars = bars.set_axis(bars.index.set_levels(bars.index.levels[1].as_unit("ns"), level="time"))
    rng = np.random.default_rng(0)
    msft = bars.index.get_level_values("symbol") == "MSFT"
    drop = msft & (rng.random(len(bars)) < 0.03)
    return bars[~drop]


def crossover_target(bars: pd.DataFrame) -> pd.Series:
    """Long 0.5 while the 10-day mean is above the 50-day one, short 0.25 otherwise; NaN
    (hold) in the warm-up and on a few random bars."""
    close = bars["close"]
    fast = close.groupby(level="symbol").transform(lambda s: s.rolling(10).mean())
    slow = close.groupby(level="symbol").transform(lambda s: s.rolling(50).mean())
    target = pd.Series(np.where(fast > slow, 0.5, -0.25), index=bars.index)
    target[slow.isna()] = np.nan
    target[np.random.default_rng(1).random(len(target)) < 0.05] = np.nan
    return target


@pytest.mark.parametrize(
    ("fill", "sizing", "max_drawdown"),
    [
        ("next_open", "whole", None),
        ("close", "fraction", None),
        ("next_open", "units", None),
        ("close", "whole", 0.5),
    ],
)
def test_replaying_the_sample_equals_run(
    fill: str, sizing: str, max_drawdown: float | None
) -> None:
    bars = real_bars()
    target = crossover_target(bars)
    config = BacktestConfig(
        fill=fill,
        initial_cash=100_000.0,
        sizing=sizing,
        unit_size=200.0,
        min_trade=0.01,
        costs=CostConfig(
            commission_bps=2.0,
            slippage_bps=1.0,
            commission_fixed=1.0,
            half_spread_bps=1.0,
            slippage_vol=0.5,
            vol_window=20,
            borrow_bps=100.0,
        ),
        risk=RiskConfig(
            stop_loss=0.1,
            take_profit=0.4,
            trailing_stop=0.15,
            max_daily_loss=0.04,
            max_position=0.5,
            max_leverage=1.0,
            max_drawdown=max_drawdown,
        ),
    )
    res = run(bars, target, config, periods_per_year=PPY, buy_hold=False)

    symbols = ["AAPL", "MSFT"]
    wide = bars[["open", "high", "low", "close"]].unstack("symbol")
    grid = target.unstack("symbol").reindex(index=wide.index, columns=symbols)
    prices = [wide[c].reindex(columns=symbols).to_numpy() for c in ("open", "high", "low", "close")]
    times_ms = (wide.index.asi8 // 1_000_000).tolist()
    limits = config.risk.limits()
    acct = PaperAccount.from_cost_model(
        symbols,
        config.costs.cost_model(),
        periods_per_year=PPY,
        cash=config.initial_cash,
        fill=config.fill,
        sizing=config.sizing,
        unit_size=config.unit_size,
        min_trade=config.min_trade,
        **{k: getattr(limits, k) for k in LIMITS},
    )
    tgt = grid.to_numpy()
    for t, ms in enumerate(times_ms):
        acct.step(ms, utc_day(ms), *(p[t] for p in prices), tgt[t])

    assert len(res.trades) > (10 if max_drawdown else 100)
    assert acct.killed == (max_drawdown is not None)
    assert np.isnan(prices[3][:, 1]).any()  # MSFT misses bars
    assert_same(acct, res.sim)
    np.testing.assert_array_equal(res.positions.to_numpy(), acct.history()[2])
    assert res.equity.iloc[-1] == acct.equity
    assert [f.reason for f in acct.fills] == list(res.fills["reason"])
    assert [f.symbol for f in acct.fills] == list(res.fills["symbol"])


def test_importing_and_stepping_the_account_loads_no_pandas() -> None:
    code = textwrap.dedent(
        """
        import sys
        import math
        from mlalgo.live.paper import PaperAccount

        acct = PaperAccount(
            ["A", "B"], 1000.0, commission_rate=1e-4, slippage_rate=2e-4, slippage_vol=0.5,
            vol_window=2, max_daily_loss=0.05, stop_loss=0.02,
        )
        nan = math.nan
        for t, px in enumerate([10.0, 10.2, 10.1, 9.9, 10.3]):
            acct.step(t, t, [px, nan], [px, nan], [px, nan], [px, nan], [1.0, nan])
        acct.trades(final=True)
        assert acct.fills, "nothing traded"
        assert "pandas" not in sys.modules, "pandas was imported"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_utc_day_is_the_runners_calendar_day() -> None:
    times = pd.DatetimeIndex(["1969-12-31 23:00", "2024-03-01 00:00", "2024-03-01 23:59:59"])
    times = times.tz_localize("UTC").as_unit("ns")
    from mlalgo.backtest.runner import _days

    assert [utc_day(int(ns // 1_000_000)) for ns in times.asi8] == _days(times).tolist()
    assert math.isclose(utc_day(86_400_000), 1)


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(paper, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
