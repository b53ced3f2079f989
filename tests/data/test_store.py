"""The bar store: layout, incremental ranges, merges and atomic rewrites."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlalgo.data.files import read_bar_file
from mlalgo.data.sources import FileSource
from mlalgo.data.store import BarStore, missing_ranges, update

ROOT = Path(__file__).resolve().parents[2]
STOCKS = ROOT / "data" / "sample" / "stocks_daily.csv"


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


@pytest.fixture(scope="module")
def ibm() -> pd.DataFrame:
    bars = read_bar_file(STOCKS)
    return bars.loc[["IBM"]]


def test_layout_is_source_symbol_interval(tmp_path: Path, ibm: pd.DataFrame) -> None:
    store = BarStore(tmp_path)

    path = store.write("binance", "ibm", "1d", ibm.iloc[:10])

    assert path == tmp_path / "binance" / "IBM" / "1d.parquet"
    meta = pq.read_schema(path).metadata
    assert meta[b"mlalgo.source"] == b"binance" and meta[b"mlalgo.interval"] == b"1d"
    assert pq.read_schema(path).names == ["time", "open", "high", "low", "close", "volume"]


def test_read_round_trips_exactly_and_filters_by_open_time(tmp_path: Path, ibm) -> None:
    store = BarStore(tmp_path)
    store.write("s", "IBM", "1d", ibm)

    pd.testing.assert_frame_equal(store.read("s", "IBM", "1d"), ibm)
    part = store.read("s", "IBM", "1d", ts("2001-01-02"), ts("2001-01-05"))
    assert list(part.index.get_level_values("time").strftime("%d")) == ["02", "03", "04", "05"]
    assert store.read("s", "NONE", "1d").empty
    assert store.span("s", "IBM", "1d") == (ts("2000-03-01"), ts("2013-03-01"))
    assert store.span("s", "NONE", "1d") is None


def test_merges_keep_one_bar_per_time_and_the_newest_value_wins(tmp_path: Path, ibm) -> None:
    store = BarStore(tmp_path)
    store.write("s", "IBM", "1d", ibm.iloc[:20])
    revised = ibm.iloc[10:30].copy()
    revised["close"] = revised["close"] * 1.01

    store.write("s", "IBM", "1d", revised)

    out = store.read("s", "IBM", "1d")
    assert len(out) == 30 and out.index.is_unique and out.index.is_monotonic_increasing
    pd.testing.assert_series_equal(out["close"].iloc[10:30], revised["close"])
    pd.testing.assert_series_equal(out["close"].iloc[:10], ibm["close"].iloc[:10])


@pytest.mark.parametrize(
    ("span", "start", "end", "expected"),
    [
        (None, "2020-01-01", "2020-01-10", [("2020-01-01", "2020-01-10")]),
        (
            ("2020-01-03", "2020-01-05"),
            "2020-01-01",
            "2020-01-10",
            [("2020-01-01", "2020-01-02"), ("2020-01-06", "2020-01-10")],
        ),
        (("2020-01-03", "2020-01-05"), "2020-01-03", "2020-01-05", []),
        (("2020-01-03", "2020-01-05"), "2020-01-04", "2020-01-09", [("2020-01-06", "2020-01-09")]),
        (("2020-01-03", "2020-01-05"), "2020-01-01", "2020-01-04", [("2020-01-01", "2020-01-02")]),
    ],
)
def test_missing_ranges_cover_only_the_ends_the_store_lacks(span, start, end, expected) -> None:
    have = None if span is None else (ts(span[0]), ts(span[1]))

    got = missing_ranges(have, ts(start), ts(end), "1d")

    assert got == [(ts(a), ts(b)) for a, b in expected]


def test_update_from_a_file_source_is_incremental(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    src = FileSource(STOCKS)

    a = update(store, src, "AAPL", "1d", ts("2001-01-01"), ts("2001-12-31"), progress=False)
    b = update(store, src, "AAPL", "1d", ts("2000-01-01"), ts("2002-12-31"), progress=False)

    aapl = read_bar_file(STOCKS).loc["AAPL"]
    per_year = {y: int((aapl.index.year == y).sum()) for y in (2000, 2001, 2002)}
    assert a.new_rows == per_year[2001]
    assert b.new_rows == per_year[2000] + per_year[2002]
    assert b.total_rows == sum(per_year.values())
    assert (b.first, b.last) == (ts("2000-03-01"), ts("2002-12-31"))


def test_bad_bars_never_reach_the_store(tmp_path: Path, ibm) -> None:
    bad = ibm.iloc[:5].copy()
    bad.iloc[2, bad.columns.get_loc("high")] = 0.5 * bad["low"].iloc[2]
    csv = tmp_path / "bad.csv"
    bad.reset_index().to_csv(csv, index=False)

    with pytest.raises(ValueError, match="high"):
        update(
            BarStore(tmp_path / "store"),
            FileSource(csv),
            "IBM",
            "1d",
            ts("2000-01-01"),
            ts("2000-12-31"),
            progress=False,
        )
    assert not (tmp_path / "store" / "file" / "IBM" / "1d.parquet").exists()


def test_file_columns_can_be_mapped_and_bad_mappings_are_named(tmp_path: Path, ibm) -> None:
    frame = ibm.reset_index().rename(
        columns={"time": "Timestamp", "close": "Last", "volume": "Qty", "symbol": "Instrument"}
    )
    path = tmp_path / "odd.parquet"
    frame.to_parquet(path)
    mapping = {"time": "Timestamp", "close": "Last", "volume": "Qty", "symbol": "Instrument"}

    bars = read_bar_file(path, columns=mapping)

    pd.testing.assert_frame_equal(bars, ibm)
    with pytest.raises(ValueError, match=r"columns \['Price'\] the file lacks"):
        read_bar_file(path, columns={"close": "Price"})
    with pytest.raises(ValueError, match=r"unknown targets \['closing'\]"):
        read_bar_file(path, columns={"closing": "Last"})
