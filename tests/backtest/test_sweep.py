"""The SMA-crossover sweep is ``simulate`` run pair by pair, only faster.

Each pair's target is rebuilt here independently with pandas' rolling mean, run through
``simulate`` and scored by ``metrics.summary``; the sweep must give the same numbers. The
equity comes from the same engine on the same inputs, so the final equity, total return,
drawdown, trade count and exposure are compared exactly; the Sharpe ratio, volatility and
annual return go through a summation and ``pow`` and are compared to 1e-12 (they are equal
today: the sweep sums in NumPy's order).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import simulate
from mlalgo.backtest.metrics import summary
from mlalgo.backtest.sweep import SWEEP_KEYS, crossover_target, sma_crossover

FAST = np.array([2, 5, 5, 10, 20, 3])
SLOW = np.array([3, 20, 60, 50, 200, 250])
EXACT = ("final_equity", "total_return", "max_drawdown", "n_trades", "exposure")
CLOSE_TO = ("sharpe", "volatility", "annual_return")
# A gap between the two averages below this fraction of the price could be read either way by
# two different rolling-mean implementations; the fixtures must stay clear of it.
TIE = 1e-9


def walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Open and close of a seeded geometric random walk with 1 % daily volatility."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.003, n))
    return open_, close


def pandas_target(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """1.0 while SMA(fast) > SMA(slow), 0.0 otherwise, NaN while SMA(slow) is undefined."""
    c = pd.Series(close)
    f = c.rolling(fast).mean().to_numpy()
    s = c.rolling(slow).mean().to_numpy()
    valid = ~np.isnan(s)
    gap = np.abs(f[valid] - s[valid]) / s[valid]
    assert gap.min() > TIE, "an SMA near-tie: rounding could flip this decision"
    return np.where(valid, (f > s).astype(float), np.nan)


@pytest.fixture(scope="module")
def aapl(sample_bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    bars = sample_bars.xs("AAPL", level="symbol")
    return bars["open"].to_numpy(), bars["close"].to_numpy()


def assert_matches_simulate(
    result: dict[str, np.ndarray],
    open_: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    *,
    cash: float,
    cost: CostModel,
    fill: str,
    sizing: str,
    ppy: float = 252,
) -> None:
    for p, (fast, slow) in enumerate(zip(result["fast"], result["slow"], strict=True)):
        target = pandas_target(close, int(fast), int(slow))
        res = simulate(open_, close, target, cash=cash, cost=cost, fill=fill, sizing=sizing)
        expected = summary(res, initial=cash, ppy=ppy)
        expected["final_equity"] = res.equity[-1]
        assert len(res.trades) > 0
        for key in EXACT:
            assert result[key][p] == expected[key], (key, fast, slow)
        for key in CLOSE_TO:
            np.testing.assert_allclose(result[key][p], expected[key], rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("sizing", ["fraction", "whole"])
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_each_pair_equals_simulate_on_its_target(fill: str, sizing: str) -> None:
    open_, close = walk(3_000, seed=1)
    cash = 10_000.0
    cost = CostModel(commission_bps=5.0, slippage_bps=3.0, commission_fixed=0.5, slippage_vol=0.1)
    result = sma_crossover(
        close, FAST, SLOW, open_=open_, cash=cash, cost=cost, fill=fill, sizing=sizing
    )
    assert_matches_simulate(result, open_, close, cash=cash, cost=cost, fill=fill, sizing=sizing)


def test_real_sample_with_default_costs(aapl: tuple[np.ndarray, np.ndarray]) -> None:
    open_, close = aapl
    result = sma_crossover(close, [10, 20, 50], [20, 100, 200], periods_per_year=252)
    assert_matches_simulate(
        result, open_, close, cash=1.0, cost=CostModel(), fill="close", sizing="fraction"
    )
    assert np.all(result["n_trades"] > 5)


def test_result_layout() -> None:
    _, close = walk(500, seed=2)
    result = sma_crossover(close, FAST[:3], SLOW[:3])
    assert tuple(result) == SWEEP_KEYS
    for key, values in result.items():
        assert values.shape == (3,)
        expected = np.int64 if key in ("fast", "slow", "n_trades") else np.float64
        assert values.dtype == expected, key
    np.testing.assert_array_equal(result["fast"], FAST[:3])
    np.testing.assert_array_equal(result["slow"], SLOW[:3])
    # scalars are one pair
    one = sma_crossover(close, 5, 20)
    assert one["total_return"].tolist() == [result["total_return"][1]]


def test_same_result_on_one_thread_and_on_all() -> None:
    _, close = walk(2_000, seed=3)
    fast = np.tile(FAST, 5)
    slow = np.tile(SLOW, 5)
    everywhere = sma_crossover(close, fast, slow)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        alone = sma_crossover(close, fast, slow)
    finally:
        numba.set_num_threads(before)
    for key in SWEEP_KEYS:
        np.testing.assert_array_equal(everywhere[key], alone[key], err_msg=key)
    # repeated pairs give repeated rows, wherever they ran
    rows = everywhere["total_return"].reshape(5, -1)
    assert np.all(rows == rows[0])


def test_target_is_nan_during_warm_up_and_matches_pandas() -> None:
    _, close = walk(1_000, seed=4)
    for fast, slow in zip(FAST, SLOW, strict=True):
        target = crossover_target(close, int(fast), int(slow))
        assert np.isnan(target[: slow - 1]).all()
        assert not np.isnan(target[slow - 1 :]).any()
        np.testing.assert_array_equal(target, pandas_target(close, int(fast), int(slow)))


def test_slow_window_as_long_as_the_series_decides_once() -> None:
    _, close = walk(300, seed=5)
    close[-20:] *= 1.5  # the last bar's fast average is far above the slow one
    target = crossover_target(close, 10, 300)
    assert np.isnan(target[:-1]).all() and target[-1] == 1.0
    result = sma_crossover(close, 10, 300, cost=CostModel(commission_bps=0, slippage_bps=0))
    # bought at the last close and marked there: one open trade, nothing gained or lost
    assert result["n_trades"].tolist() == [1]
    assert result["final_equity"][0] == pytest.approx(1.0, rel=0.0, abs=1e-15)
    assert result["exposure"].tolist() == [1 / 300]


def test_a_flat_market_never_trades() -> None:
    result = sma_crossover(np.full(400, 50.0), [5, 10], [20, 40], cash=100.0)
    # equal averages are not "fast above slow": the target stays flat
    assert result["n_trades"].tolist() == [0, 0]
    assert result["final_equity"].tolist() == [100.0, 100.0]
    for key in ("total_return", "sharpe", "volatility", "max_drawdown", "exposure"):
        assert result[key].tolist() == [0.0, 0.0], key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fast": [5, 10], "slow": [20]}, "fast has 2 windows but slow has 1"),
        ({"fast": [], "slow": []}, "no \\(fast, slow\\) pairs"),
        ({"fast": [0], "slow": [20]}, "pair 0 \\(fast=0, slow=20\\).*>= 1"),
        ({"fast": [5, 20], "slow": [20, 20]}, "pair 1 \\(fast=20, slow=20\\).*< slow"),
        ({"fast": [5], "slow": [101]}, "slow window must be <= the 100 bars"),
        ({"fast": [5.0], "slow": [20.0]}, "fast must be an integer"),
        ({"fast": True, "slow": 20}, "fast must be an integer"),
        ({"fast": [[5]], "slow": [[20]]}, "fast must be an integer or a 1-D array"),
        ({"close": np.full((100, 1), 10.0)}, "close must be 1-D"),
        ({"close": np.array([])}, "close is empty"),
        ({"close": np.r_[np.full(50, 10.0), np.nan, np.full(49, 10.0)]}, "bar 50 is nan"),
        ({"close": np.r_[np.full(99, 10.0), 0.0]}, "bar 99 is 0.0"),
        ({"fill": "open"}, "fill must be 'next_open' or 'close'"),
        ({"sizing": "units"}, "sizing must be 'fraction' or 'whole'"),
        ({"fill": "next_open"}, "fill='next_open' needs open_"),
        ({"fill": "next_open", "open_": np.full(99, 10.0)}, "open_ has 99"),
        ({"cash": 0.0}, "cash must be finite and > 0"),
        ({"cash": float("inf")}, "cash must be finite and > 0"),
        ({"cost": 0.001}, "cost must be a CostModel"),
        ({"periods_per_year": 0}, "periods_per_year must be finite and > 0"),
        ({"cost": CostModel(slippage_bps=10_000.0)}, "adverse move at bar 0 is 100.00%"),
    ],
)
def test_input_errors_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"close": np.full(100, 10.0), "fast": [5], "slow": [20]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sma_crossover(**args)  # type: ignore[arg-type]


def test_crossover_target_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="one fast and one slow window"):
        crossover_target(np.full(100, 10.0), [5, 6], [20, 30])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fast window must be < slow window"):
        crossover_target(np.full(100, 10.0), 20, 5)
    with pytest.raises(ValueError, match="crossover_target: close must be finite"):
        crossover_target(np.r_[np.full(99, 10.0), -1.0], 5, 20)
