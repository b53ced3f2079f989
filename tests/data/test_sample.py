"""The bundled real sample, bar files and the fetch stage.

The key regression: stock splits in the raw CSV look like -50 % crashes; after back-adjustment
with Adj Close they must be ordinary days, while a real crash stays a crash.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlalgo.bars import BarError
from mlalgo.config import FetchConfig
from mlalgo.data.files import back_adjust, read_bar_file
from mlalgo.data.sample import load_sample
from mlalgo.data.sources import fetch

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
STOCKS_CSV = SAMPLE / "stocks_daily.csv"
INDEX_CSV = SAMPLE / "sp500.csv"


@pytest.fixture(scope="module")
def raw_stocks() -> pd.DataFrame:
    return pd.read_csv(STOCKS_CSV, parse_dates=["Date"])


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def raw_close_return(raw: pd.DataFrame, symbol: str, day: str) -> float:
    close = raw.loc[raw["Ticker"] == symbol].set_index("Date")["Close"]
    return float(close.pct_change().loc[pd.Timestamp(day)])


def adjusted_close_return(bars: pd.DataFrame, symbol: str, day: str) -> float:
    close = bars.xs(symbol, level="symbol")["close"]
    return float(close.pct_change().loc[utc(day)])


def write_single_symbol_csv(path: Path, columns: dict[str, str]) -> None:
    """Three bars of one symbol with the given names for time/open/high/low/close/volume."""
    frame = pd.DataFrame(
        {
            columns["time"]: ["2020-01-02", "2020-01-03", "2020-01-06"],
            columns["open"]: [10.0, 11.0, 12.0],
            columns["high"]: [11.0, 12.0, 13.0],
            columns["low"]: [9.5, 10.5, 11.5],
            columns["close"]: [10.5, 11.5, 12.5],
            columns["volume"]: [100, 200, 300],
        }
    )
    frame.to_csv(path, index=False)


# ---------------------------------------------------------------- split adjustment


@pytest.mark.parametrize(
    ("symbol", "day"),
    [("AAPL", "2000-06-21"), ("AAPL", "2005-02-28"), ("MSFT", "2003-02-18")],
)
def test_split_days_are_not_crashes_after_adjustment_though_raw_data_shows_one(
    sample_bars: pd.DataFrame, raw_stocks: pd.DataFrame, symbol: str, day: str
) -> None:
    raw = raw_close_return(raw_stocks, symbol, day)
    adjusted = adjusted_close_return(sample_bars, symbol, day)

    assert raw < -0.40, f"raw {symbol} {day} should show the split as a crash, got {raw:.3f}"
    assert adjusted > -0.20, f"adjusted {symbol} {day} still looks like a crash: {adjusted:.3f}"


def test_a_real_crash_survives_adjustment_aapl_2000_09_29(
    sample_bars: pd.DataFrame, raw_stocks: pd.DataFrame
) -> None:
    adjusted = adjusted_close_return(sample_bars, "AAPL", "2000-09-29")

    assert adjusted == pytest.approx(-0.519, abs=0.001)
    assert adjusted == pytest.approx(raw_close_return(raw_stocks, "AAPL", "2000-09-29"), abs=1e-9)


def test_prices_scale_by_adj_close_over_close_and_volume_by_its_inverse(
    sample_bars: pd.DataFrame, raw_stocks: pd.DataFrame
) -> None:
    row = raw_stocks.loc[
        (raw_stocks["Ticker"] == "AAPL") & (raw_stocks["Date"] == pd.Timestamp("2000-03-02"))
    ].iloc[0]
    ratio = row["Adj Close"] / row["Close"]

    bar = sample_bars.loc[("AAPL", utc("2000-03-02"))]

    assert ratio < 0.1  # several splits later: a strong adjustment, so the check can fail
    for col in ("Open", "High", "Low", "Close"):
        assert bar[col.lower()] == pytest.approx(row[col] * ratio, rel=1e-12)
    assert bar["close"] == pytest.approx(row["Adj Close"], rel=1e-12)
    assert bar["volume"] == pytest.approx(row["Volume"] / ratio, rel=1e-12)


def test_adjustment_leaves_traded_value_open_times_volume_unchanged(
    sample_bars: pd.DataFrame, raw_stocks: pd.DataFrame
) -> None:
    for symbol in ("AAPL", "IBM", "MSFT"):
        raw = raw_stocks.loc[raw_stocks["Ticker"] == symbol].sort_values("Date")
        bars = sample_bars.xs(symbol, level="symbol")

        raw_value = raw["Open"].to_numpy() * raw["Volume"].to_numpy()
        adjusted_value = bars["open"].to_numpy() * bars["volume"].to_numpy()

        np.testing.assert_allclose(adjusted_value, raw_value, rtol=1e-12)


def test_back_adjust_drops_the_adjusted_column_and_keeps_the_input_unchanged() -> None:
    frame = pd.DataFrame(
        {
            "open": [10.0, 20.0],
            "high": [12.0, 22.0],
            "low": [9.0, 19.0],
            "close": [11.0, 20.0],
            "volume": [100.0, 50.0],
            "adj close": [5.5, 20.0],
        }
    )
    before = frame.copy()

    out = back_adjust(frame, "adj close")

    assert "adj close" not in out.columns
    np.testing.assert_allclose(out["open"], [5.0, 20.0])
    np.testing.assert_allclose(out["high"], [6.0, 22.0])
    np.testing.assert_allclose(out["low"], [4.5, 19.0])
    np.testing.assert_allclose(out["close"], [5.5, 20.0])
    np.testing.assert_allclose(out["volume"], [200.0, 50.0])
    pd.testing.assert_frame_equal(frame, before)


# ---------------------------------------------------------------- sample shape


def test_sample_holds_three_stocks_2000_to_2013_and_spx_1999_to_2018(
    sample_bars: pd.DataFrame,
) -> None:
    counts = sample_bars.groupby(level="symbol").size().to_dict()
    assert counts == {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "SPX": 5031}
    for symbol in ("AAPL", "IBM", "MSFT"):
        times = sample_bars.xs(symbol, level="symbol").index
        assert (times[0], times[-1]) == (utc("2000-03-01"), utc("2013-03-01"))
    spx = sample_bars.xs("SPX", level="symbol").index
    assert (spx[0], spx[-1]) == (utc("1999-01-04"), utc("2018-12-31"))


def test_sample_is_in_the_bar_schema(sample_bars: pd.DataFrame) -> None:
    assert list(sample_bars.index.names) == ["symbol", "time"]
    assert list(sample_bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in sample_bars.dtypes)
    assert str(sample_bars.index.get_level_values("time").tz) == "UTC"
    assert sample_bars.index.is_monotonic_increasing
    assert not sample_bars.index.has_duplicates


def test_spx_is_unadjusted_and_equals_the_raw_close(sample_bars: pd.DataFrame) -> None:
    raw = pd.read_csv(INDEX_CSV, parse_dates=["Date"])
    spx = sample_bars.xs("SPX", level="symbol")

    np.testing.assert_array_equal(spx["close"].to_numpy(), raw["Close"].to_numpy())
    np.testing.assert_array_equal(spx["volume"].to_numpy(), raw["Volume"].to_numpy())


def test_load_sample_returns_only_the_requested_symbols() -> None:
    bars = load_sample(["MSFT", "SPX"], root=SAMPLE)

    assert sorted(set(bars.index.get_level_values("symbol"))) == ["MSFT", "SPX"]
    assert len(bars) == 3270 + 5031


def test_unknown_sample_symbol_is_refused_with_its_name_and_the_symbols_on_offer() -> None:
    with pytest.raises(BarError, match="GOOG") as err:
        load_sample(["AAPL", "GOOG"], root=SAMPLE)

    for symbol in ("AAPL", "IBM", "MSFT", "SPX"):
        assert symbol in str(err.value)


# ---------------------------------------------------------------- read_bar_file


def test_read_bar_file_accepts_upper_case_columns_and_names_the_symbol_after_the_file(
    tmp_path: Path,
) -> None:
    names = {c: c.upper() for c in ("open", "high", "low", "close", "volume")}
    path = tmp_path / "spy.csv"
    write_single_symbol_csv(path, {"time": "DATE", **names})

    bars = read_bar_file(path)

    assert list(bars.index.names) == ["symbol", "time"]
    assert set(bars.index.get_level_values("symbol")) == {"SPY"}
    assert list(bars.index.get_level_values("time")) == [
        utc("2020-01-02"),
        utc("2020-01-03"),
        utc("2020-01-06"),
    ]
    np.testing.assert_array_equal(bars["close"].to_numpy(), [10.5, 11.5, 12.5])
    assert bars["volume"].dtype == np.float64


def test_read_bar_file_accepts_a_lower_case_time_column_and_an_explicit_symbol(
    tmp_path: Path,
) -> None:
    names = {c: c.capitalize() for c in ("open", "high", "low", "close", "volume")}
    path = tmp_path / "whatever.csv"
    write_single_symbol_csv(path, {"time": "time", **names})

    bars = read_bar_file(path, symbol="QQQ")

    assert set(bars.index.get_level_values("symbol")) == {"QQQ"}
    assert len(bars) == 3
    np.testing.assert_array_equal(bars["open"].to_numpy(), [10.0, 11.0, 12.0])


def test_read_bar_file_round_trips_bars_through_parquet(
    sample_bars: pd.DataFrame, tmp_path: Path
) -> None:
    bars = sample_bars.loc[["IBM", "SPX"]].iloc[::50]
    path = tmp_path / "bars.parquet"
    bars.reset_index().to_parquet(path)

    back = read_bar_file(path)

    pd.testing.assert_frame_equal(back, bars)


def test_read_bar_file_names_the_file_and_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "novol.csv"
    write_single_symbol_csv(
        path,
        {
            "time": "Date",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        },
    )
    pd.read_csv(path).drop(columns=["Volume"]).to_csv(path, index=False)

    with pytest.raises(BarError, match="volume") as err:
        read_bar_file(path)

    assert str(path) in str(err.value)


def test_read_bar_file_refuses_an_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "bars.json"
    path.write_text("{}")

    with pytest.raises(BarError, match=r"\.json"):
        read_bar_file(path)


# ---------------------------------------------------------------- fetch


def test_fetch_filters_to_the_date_range_inclusive_of_both_ends() -> None:
    cfg = FetchConfig(
        path=SAMPLE, symbols=("AAPL", "MSFT"), start=date(2005, 1, 3), end=date(2005, 1, 31)
    )

    bars = fetch(cfg)

    for symbol in ("AAPL", "MSFT"):
        times = bars.xs(symbol, level="symbol").index
        assert times[0] == utc("2005-01-03")  # a trading day: the start bar is kept
        assert times[-1] == utc("2005-01-31")  # a trading day: the end bar is kept
        assert len(times) == 20
    assert set(bars.index.get_level_values("symbol")) == {"AAPL", "MSFT"}


def test_fetch_of_an_empty_range_points_at_the_start_and_end_settings() -> None:
    cfg = FetchConfig(path=SAMPLE, symbols=("AAPL",), start=date(2015, 1, 1), end=date(2015, 6, 1))

    with pytest.raises(BarError, match=r"stages\.fetch\.start/end"):
        fetch(cfg)


def test_fetch_from_a_file_refuses_a_symbol_the_file_does_not_hold() -> None:
    cfg = FetchConfig(source="file", path=STOCKS_CSV, symbols=("AAPL", "GOOG"))

    with pytest.raises(BarError, match="GOOG"):
        fetch(cfg)


def test_fetch_from_a_file_keeps_only_the_configured_symbols() -> None:
    cfg = FetchConfig(source="file", path=STOCKS_CSV, symbols=("IBM",), end=date(2000, 3, 31))

    bars = fetch(cfg)

    assert set(bars.index.get_level_values("symbol")) == {"IBM"}
    assert bars.index.get_level_values("time")[-1] == utc("2000-03-31")


@pytest.mark.parametrize("source", ["sample", "file"])
def test_fetch_with_no_symbols_is_refused_naming_the_symbols_setting(source: str) -> None:
    path = SAMPLE if source == "sample" else STOCKS_CSV

    with pytest.raises((BarError, ValidationError), match="symbols"):
        fetch(FetchConfig(source=source, path=path, symbols=()))  # type: ignore[arg-type]
