"""The kernels compute TA-Lib's indicators: same values to 1e-9, NaN at exactly the same bars.

Run on every real sample symbol's adjusted bars (data/sample) for short and long windows.
TA-Lib's conventions are matched, not approximated: its output index ``t`` is the indicator of
the bars up to ``t``, with NaN for its lookback, so the arrays are compared index for index.
The one documented difference, RSI 50 (not TA-Lib's 0) on a flat market, never occurs on real
data; see test_kernels.py for it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mlalgo.data.files import read_bar_file
from mlalgo.features import kernels as K

talib = pytest.importorskip("talib")

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
FILES = ("stocks_daily.csv", "sp500.csv")
WINDOWS = (2, 5, 14, 20, 50, 200)


@cache
def _bars() -> dict[str, dict[str, np.ndarray]]:
    """Adjusted high, low and close per symbol, read as the pipeline reads them."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in FILES:
        path = SAMPLE / name
        if not path.exists():
            pytest.skip(f"bundled data not found: {path}")
        frame = read_bar_file(path)
        for symbol, group in frame.groupby(level="symbol", sort=True):
            out[str(symbol)] = {
                col: group[col].to_numpy(dtype=np.float64) for col in ("high", "low", "close")
            }
    return out


SYMBOLS = ("AAPL", "IBM", "MSFT", "SP500")


def test_sample_has_the_expected_symbols() -> None:
    assert sorted(_bars()) == sorted(SYMBOLS)


def assert_matches(ours: np.ndarray, theirs: np.ndarray, *, atol: float, what: str) -> None:
    """NaN exactly where TA-Lib has NaN; elsewhere equal to ``rtol=1e-9`` plus ``atol``."""
    assert ours.shape == theirs.shape, what
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{what}: NaN mask")
    valid = ~np.isnan(theirs)
    assert valid.any(), f"{what}: TA-Lib has no value to compare"
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-9, atol=atol, err_msg=what)


@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_moving_averages_match_talib(symbol: str, n: int) -> None:
    close = _bars()[symbol]["close"]
    scale = float(np.max(np.abs(close)))

    assert_matches(K.sma(close, n), talib.SMA(close, n), atol=1e-12 * scale, what="SMA")
    assert_matches(K.ema(close, n), talib.EMA(close, n), atol=1e-12 * scale, what="EMA")


@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_rsi_matches_talib(symbol: str, n: int) -> None:
    close = _bars()[symbol]["close"]

    assert_matches(K.rsi(close, n), talib.RSI(close, n), atol=1e-9, what="RSI")


@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_rolling_std_matches_talib_population_stddev(symbol: str, n: int) -> None:
    close = _bars()[symbol]["close"]
    # TA-Lib's running sums of x and x^2 carry an absolute error of about 1e-14 of the price
    # level (a relative 1e-10 on quiet two-bar windows); ours is exact per window.
    atol = 1e-9 * float(np.max(np.abs(close)))

    assert_matches(K.rolling_std(close, n), talib.STDDEV(close, n, 1.0), atol=atol, what="STDDEV")


@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_bollinger_b_matches_talib_bbands(symbol: str, n: int) -> None:
    close = _bars()[symbol]["close"]
    upper, middle, lower = talib.BBANDS(close, n, 2.0, 2.0, 0)
    width = upper - lower
    flat = width == 0.0  # no band: TA-Lib's ratio is 0/0 or x/0 there, ours is NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(flat, np.nan, (close - lower) / width)

    ours = K.bollinger_b(close, n)

    assert_matches(ours, expected, atol=1e-9, what="%b")
    # The bands themselves, from the kernels %b is built on.
    sma, std = K.sma(close, n), K.rolling_std(close, n)
    scale = 1e-9 * float(np.max(np.abs(close)))
    assert_matches(sma, middle, atol=scale, what="BBANDS middle")
    assert_matches(sma + 2.0 * std, upper, atol=scale, what="BBANDS upper")
    assert_matches(sma - 2.0 * std, lower, atol=scale, what="BBANDS lower")


@pytest.mark.parametrize("n", (1, *WINDOWS))
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_atr_matches_talib(symbol: str, n: int) -> None:
    bars = _bars()[symbol]
    high, low, close = bars["high"], bars["low"], bars["close"]

    ours = K.atr(high, low, close, n)

    assert_matches(
        ours, talib.ATR(high, low, close, n), atol=1e-12 * float(np.max(high)), what="ATR"
    )
    assert np.all(np.isnan(ours[:n])) and not np.any(np.isnan(ours[n:]))  # first value at n


def test_talib_index_convention_is_ours() -> None:
    """TA-Lib's first RSI/ATR value sits at index n, its SMA/EMA/STDDEV at n - 1, like ours."""
    close = _bars()["SP500"]["close"][:40]
    high, low = _bars()["SP500"]["high"][:40], _bars()["SP500"]["low"][:40]
    n = 10

    first = {
        "RSI": np.flatnonzero(~np.isnan(talib.RSI(close, n)))[0],
        "ATR": np.flatnonzero(~np.isnan(talib.ATR(high, low, close, n)))[0],
        "SMA": np.flatnonzero(~np.isnan(talib.SMA(close, n)))[0],
        "EMA": np.flatnonzero(~np.isnan(talib.EMA(close, n)))[0],
        "STDDEV": np.flatnonzero(~np.isnan(talib.STDDEV(close, n, 1.0)))[0],
    }

    assert first == {"RSI": n, "ATR": n, "SMA": n - 1, "EMA": n - 1, "STDDEV": n - 1}


def test_flat_market_rsi_is_the_one_documented_difference() -> None:
    """No movement since the start: TA-Lib reads it as maximally oversold, we read it as neutral."""
    flat = np.full(30, 100.0)

    assert np.all(talib.RSI(flat, 14)[14:] == 0.0)
    assert np.all(K.rsi(flat, 14)[14:] == 50.0)
