"""Reconciling two sources of the same bars: every missing bar and every value beyond tolerance is
reported exactly once, with both values; identical sources reconcile cleanly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import BarError
from mlalgo.reconcile import reconcile

CHANGED = ("IBM", pd.Timestamp("2005-03-04", tz="UTC"))
MISSING = ("MSFT", pd.Timestamp("2006-01-03", tz="UTC"))


@pytest.fixture
def altered(sample_bars: pd.DataFrame) -> pd.DataFrame:
    """The sample with one close 0.1 % higher and one bar missing."""
    b = sample_bars.drop(index=[MISSING])
    b.loc[CHANGED, "close"] = b.loc[CHANGED, "close"] * 1.001
    return b


def test_identical_frames_reconcile(sample_bars: pd.DataFrame) -> None:
    report = reconcile(sample_bars, sample_bars.copy())

    assert report.ok
    assert report.rows_compared == len(sample_bars)
    assert report.to_frame().empty
    assert report.summary().endswith("ok")


def test_one_changed_close_and_one_missing_bar_are_each_reported_exactly(
    sample_bars: pd.DataFrame, altered: pd.DataFrame
) -> None:
    report = reconcile(sample_bars, altered, names=("yahoo.csv", "stooq.csv"))

    assert not report.ok
    assert list(report.only_in_a) == [MISSING]
    assert list(report.only_in_b) == []
    (row,) = report.mismatches.itertuples(index=False)
    assert (row.symbol, row.time, row.column) == (*CHANGED, "close")
    assert row.a == sample_bars.loc[CHANGED, "close"]
    assert row.b == altered.loc[CHANGED, "close"]
    assert row.rel_diff == pytest.approx(0.001 / 1.001)
    summary = report.summary()
    assert "1 only in yahoo.csv, 0 only in stooq.csv, 1 values differ" in summary
    assert "only in yahoo.csv: MSFT 2006-01-03T00:00Z" in summary
    assert "IBM 2005-03-04T00:00Z close: yahoo.csv 70.14003945, stooq.csv 70.21017949" in summary


def test_the_frame_has_one_row_per_difference(
    sample_bars: pd.DataFrame, altered: pd.DataFrame
) -> None:
    frame = reconcile(altered, sample_bars).to_frame()

    assert list(frame.columns) == ["kind", "symbol", "time", "column", "a", "b", "rel_diff"]
    assert frame["kind"].tolist() == ["only in b", "value differs"]
    assert frame[["symbol", "time"]].apply(tuple, axis=1).tolist() == [MISSING, CHANGED]


@pytest.mark.parametrize(
    ("rtol", "atol", "differs"),
    [(1e-6, 0.0, True), (2e-3, 0.0, False), (0.0, 0.05, True), (0.0, 0.08, False)],
)
def test_tolerance_is_respected(
    sample_bars: pd.DataFrame, altered: pd.DataFrame, rtol: float, atol: float, differs: bool
) -> None:
    # the change is 0.070 in absolute terms and 0.000999 relative
    report = reconcile(sample_bars, altered, rtol=rtol, atol=atol)

    assert len(report.mismatches) == int(differs)


def test_nan_equals_nan_but_not_a_number() -> None:
    index = pd.MultiIndex.from_tuples(
        [("A", pd.Timestamp("2024-01-01", tz="UTC")), ("A", pd.Timestamp("2024-01-02", tz="UTC"))],
        names=["symbol", "time"],
    )
    a = pd.DataFrame({"close": [np.nan, np.nan]}, index=index)
    b = pd.DataFrame({"close": [np.nan, 1.0]}, index=index)

    report = reconcile(a, b, columns=["close"])

    assert report.mismatches["rel_diff"].tolist() == [np.inf]


def test_frames_that_cannot_be_aligned_are_refused_naming_the_side(
    sample_bars: pd.DataFrame,
) -> None:
    repeated = pd.concat([sample_bars, sample_bars.iloc[:1]]).sort_index()

    with pytest.raises(BarError, match=r"^new\.parquet: repeated"):
        reconcile(sample_bars, repeated, names=("old.parquet", "new.parquet"))
    with pytest.raises(BarError, match=r"^a: missing columns \['volume'\]"):
        reconcile(sample_bars.drop(columns=["volume"]), sample_bars)
