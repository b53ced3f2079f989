"""Parity of ``simulate(..., sizing="whole")`` with backtesting.py on a 10/20 SMA crossover.

Motivation: a hand-written engine is easy to get subtly wrong (fill timing, who pays which
commission, how a reversal is sized). backtesting.py is an independent, widely used
implementation, so agreeing with it trade by trade on real data pins all of those rules.

The same strategy is written twice: idiomatically for backtesting.py (``self.I``,
``crossover``, ``position.close()`` then ``buy()``/``sell()``, ``exclusive_orders=True``) and
as a target series for mlalgo (+1 on an up-cross, -1 or 0 on a down-cross, NaN = hold),
decided at the close. Semantic differences handled here:

* backtesting.py never fills an order placed on the last bar, even with
  ``trade_on_close=True``; mlalgo's ``fill="close"`` would, so the last target is NaN.
* With ``finalize_trades=False`` (its default) the last trade stays open and is missing from
  ``stats._trades``; it is compared through ``Strategy.trades`` (entry bar, price, size) and
  through the final equity, which both mark at the last close. Its ``pl`` would exclude the
  entry commission while mlalgo's open-trade ``pnl`` includes it, so P&L is not compared.
* With ``trade_on_close=True`` backtesting.py records a bar's equity before that bar's
  orders are filled at its close, one bar late; those bars are left out of the curve check.
* backtesting.py's ``spread`` is paid on entry only and mlalgo's slippage on every fill, so
  both are zero; commission is 10 bps on both sides in both.
* On an exact SMA tie ``crossover`` misses the next cross, and an up-cross while long makes
  backtesting.py close and reopen, which a target cannot express; the data has no ties and
  the crosses alternate, which the test asserts.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import FILL_CLOSE, FILL_NEXT_OPEN, SIZING_WHOLE, SimResult, simulate

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402

# backtesting.py's own statistics call a pandas API that pandas deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")

CASH = 10_000.0
COMMISSION_BPS = 10.0
FAST, SLOW = 10, 20
# Both engines do the same arithmetic in a different order: agreement is far inside a cent.
PNL_ATOL = 1e-6


def sma(values: npt.ArrayLike, n: int) -> np.ndarray:
    """Simple moving average, NaN during warm-up; shared by both sides of the comparison."""
    return pd.Series(np.asarray(values, dtype=np.float64)).rolling(n).mean().to_numpy()


class SmaCross(Strategy):
    """The backtesting.py README strategy, with a long-only switch."""

    fast = FAST
    slow = SLOW
    long_only = False

    def init(self) -> None:
        self.sma_fast = self.I(sma, self.data.Close, self.fast)
        self.sma_slow = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            self.position.close()
            self.buy()
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()
            if not self.long_only:
                self.sell()


def crossover_target(close: np.ndarray, long_only: bool) -> np.ndarray:
    """+1 on an up-cross, -1 (0 if long-only) on a down-cross, NaN (hold) otherwise."""
    fast, slow = sma(close, FAST), sma(close, SLOW)
    up = np.zeros(close.shape[0], dtype=bool)
    down = up.copy()
    up[1:] = (fast[:-1] < slow[:-1]) & (fast[1:] > slow[1:])
    down[1:] = (slow[:-1] < fast[:-1]) & (slow[1:] > fast[1:])
    events = np.where(up, 1, np.where(down, -1, 0))
    events = events[events != 0]
    assert not np.any(fast == slow) and np.all(events[1:] != events[:-1]), (
        "an SMA tie or repeated cross: backtesting.py would close and reopen (module docstring)"
    )
    target = np.full(close.shape[0], np.nan)
    target[up] = 1.0
    target[down] = 0.0 if long_only else -1.0
    target[-1] = np.nan  # backtesting.py never fills an order placed on the last bar
    return target


@pytest.fixture(scope="module")
def ohlcv(sample_bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Daily OHLCV per symbol in backtesting.py's layout (capitalised columns, DatetimeIndex)."""
    frames = {}
    for symbol in ("AAPL", "MSFT"):
        bars = sample_bars.xs(symbol, level="symbol")
        frame = bars[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
        frames[symbol] = frame.set_axis(bars.index.tz_localize(None))
    return frames


def run_backtesting_py(data: pd.DataFrame, long_only: bool, on_close: bool) -> pd.Series:
    bt = Backtest(
        data,
        SmaCross,
        cash=CASH,
        commission=COMMISSION_BPS * 1e-4,
        exclusive_orders=True,
        trade_on_close=on_close,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some trades remain open")
        return bt.run(long_only=long_only)


def run_mlalgo(data: pd.DataFrame, long_only: bool, on_close: bool) -> SimResult:
    close = data["Close"].to_numpy()
    return simulate(
        data["Open"].to_numpy(),
        close,
        crossover_target(close, long_only),
        cash=CASH,
        cost=CostModel(commission_bps=COMMISSION_BPS, slippage_bps=0.0),
        fill=FILL_CLOSE if on_close else FILL_NEXT_OPEN,
        sizing=SIZING_WHOLE,
    )


@pytest.mark.parametrize("on_close", [False, True], ids=["next_open", "trade_on_close"])
@pytest.mark.parametrize("long_only", [False, True], ids=["reversal", "long_only"])
@pytest.mark.parametrize("symbol", ["AAPL", "MSFT"])
def test_sma_crossover_matches_backtesting_py_trade_by_trade(
    ohlcv: dict[str, pd.DataFrame], symbol: str, long_only: bool, on_close: bool
) -> None:
    data = ohlcv[symbol]
    stats = run_backtesting_py(data, long_only, on_close)
    res = run_mlalgo(data, long_only, on_close)

    expected = stats["_trades"]
    tr = res.trades
    closed = ~tr.is_open
    assert len(expected) > 60
    assert int(closed.sum()) == len(expected)
    np.testing.assert_array_equal(tr.entry_bar[closed], expected["EntryBar"])
    np.testing.assert_array_equal(tr.exit_bar[closed], expected["ExitBar"])
    np.testing.assert_array_equal((tr.direction * tr.units)[closed], expected["Size"])
    np.testing.assert_array_equal(tr.entry_price[closed], expected["EntryPrice"])
    np.testing.assert_array_equal(tr.exit_price[closed], expected["ExitPrice"])
    np.testing.assert_allclose(tr.pnl[closed], expected["PnL"], rtol=0.0, atol=PNL_ATOL)
    if long_only:
        assert np.all(tr.direction == 1)

    still_open = stats["_strategy"].trades
    assert int(tr.is_open.sum()) == len(still_open)
    for trade, i in zip(still_open, np.flatnonzero(tr.is_open), strict=True):
        assert (trade.entry_bar, trade.size) == (tr.entry_bar[i], tr.direction[i] * tr.units[i])
        assert trade.entry_price == tr.entry_price[i]

    curve = stats["_equity_curve"]["Equity"].to_numpy()
    assert res.equity[-1] == pytest.approx(stats["Equity Final [$]"], rel=0.0, abs=PNL_ATOL)
    marked = np.ones(curve.shape[0], dtype=bool)
    if on_close:
        marked[res.fill_bar] = False
    np.testing.assert_allclose(res.equity[marked], curve[marked], rtol=0.0, atol=PNL_ATOL)
