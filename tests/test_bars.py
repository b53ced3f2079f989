"""The bar schema gate: every bad row is refused with a message that says how to proceed, or
dropped and counted; structural problems are always refused."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import BarError, make_bars, validate

SOURCE = "unit/bars.parquet"
HINT = "stages.validate.on_error: drop"
SYMBOLS = ("AAA", "BBB", "CCC")
DAYS = pd.date_range("2021-03-01", periods=6, freq="D", tz="UTC")
# The bad rows every case plants: the frame's order puts BBB day 2 first, CCC day 1 second.
BAD_ROWS = [("BBB", DAYS[2]), ("CCC", DAYS[1])]


def good_bars() -> pd.DataFrame:
    """Three symbols x six days of consistent bars (low < open, close < high)."""
    rows = []
    for k, symbol in enumerate(SYMBOLS):
        for i, day in enumerate(DAYS):
            base = 100.0 + 10 * k + i
            rows.append(
                {
                    "symbol": symbol,
                    "time": day,
                    "open": base,
                    "high": base + 2.0,
                    "low": base - 2.0,
                    "close": base + 1.0,
                    "volume": 1000.0 + i,
                }
            )
    return make_bars(pd.DataFrame(rows))


def set_values(bars: pd.DataFrame, row: tuple[str, pd.Timestamp], **values: float) -> None:
    for col, value in values.items():
        bars.loc[row, col] = value


Corrupt = Callable[[pd.DataFrame, tuple[str, pd.Timestamp]], pd.DataFrame]


def _nan(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    set_values(bars, row, close=np.nan)
    return bars


def _non_positive(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    set_values(bars, row, open=0.0, high=0.0, low=0.0, close=0.0)
    return bars


def _high_below_low(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    low = bars.loc[row, "low"]
    set_values(bars, row, high=low - 1.0, open=low, close=low)
    return bars


def _high_below_open_close(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    close = bars.loc[row, "close"]
    set_values(bars, row, high=close - 0.5)  # still above open and low
    return bars


def _low_above_open_close(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    open_ = bars.loc[row, "open"]
    set_values(bars, row, low=open_ + 0.5)  # still below close and high
    return bars


def _negative_volume(bars: pd.DataFrame, row: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    set_values(bars, row, volume=-5.0)
    return bars


CASES: list[tuple[str, Corrupt, dict[str, int]]] = [
    ("nan", _nan, {"missing or non-finite values": 2}),
    ("non_positive", _non_positive, {"non-positive prices": 2}),
    # high < low necessarily also puts high below open/close: both kinds are counted.
    ("high_below_low", _high_below_low, {"high < low": 2, "high below open or close": 2}),
    ("high_below_open_close", _high_below_open_close, {"high below open or close": 2}),
    ("low_above_open_close", _low_above_open_close, {"low above open or close": 2}),
    ("negative_volume", _negative_volume, {"negative volume": 2}),
]


def corrupted(corrupt: Corrupt) -> pd.DataFrame:
    bars = good_bars()
    for row in BAD_ROWS:
        bars = corrupt(bars, row)
    return bars


def with_duplicates() -> pd.DataFrame:
    """The BAD_ROWS repeated once each: the repeats are the bad rows."""
    bars = good_bars()
    return pd.concat([bars, bars.loc[BAD_ROWS]]).sort_index(kind="stable")


@pytest.mark.parametrize(
    ("corrupt", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_validate_refuses_each_row_problem_naming_source_count_symbol_first_time_and_fix(
    corrupt: Corrupt, expected: dict[str, int]
) -> None:
    bars = corrupted(corrupt)
    problem = next(iter(expected))

    with pytest.raises(BarError) as err:
        validate(bars, source=SOURCE)

    message = str(err.value)
    assert message.startswith(f"{SOURCE}: ")
    assert f"2 rows with {problem}" in message
    assert "BBB 2021-03-03T00:00Z" in message  # the first bad row in frame order
    assert HINT in message


def test_validate_refuses_duplicate_times_naming_the_first_repeat() -> None:
    bars = with_duplicates()

    with pytest.raises(BarError) as err:
        validate(bars, source=SOURCE)

    message = str(err.value)
    assert f"{SOURCE}: 2 rows with duplicate times" in message
    assert "BBB 2021-03-03T00:00Z" in message
    assert HINT in message


@pytest.mark.parametrize(
    ("corrupt", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_validate_drop_removes_exactly_the_bad_rows_and_counts_them(
    corrupt: Corrupt, expected: dict[str, int]
) -> None:
    bars = corrupted(corrupt)
    good = good_bars().drop(index=BAD_ROWS)

    out, report = validate(bars, source=SOURCE, on_error="drop")

    pd.testing.assert_frame_equal(out, good)
    assert report.dropped == expected
    assert (report.rows_in, report.rows_out) == (len(bars), len(bars) - 2)


def test_validate_drop_removes_the_repeated_times_and_keeps_the_first_of_each() -> None:
    bars = with_duplicates()

    out, report = validate(bars, source=SOURCE, on_error="drop")

    pd.testing.assert_frame_equal(out, good_bars())
    assert report.dropped == {"duplicate times": 2}
    assert (report.rows_in, report.rows_out) == (20, 18)


def test_validate_refuses_a_repeated_bar_even_when_the_frame_is_not_grouped_by_symbol() -> None:
    time_major = good_bars().sort_index(level=["time", "symbol"])
    bars = pd.concat([time_major, time_major.iloc[[0]]])

    with pytest.raises(BarError):
        validate(bars, source=SOURCE)


def test_validate_drop_handles_several_kinds_of_problem_at_once() -> None:
    bars = good_bars()
    set_values(bars, ("AAA", DAYS[0]), volume=np.inf)
    set_values(bars, ("AAA", DAYS[5]), volume=-1.0)
    _low_above_open_close(bars, ("CCC", DAYS[3]))

    out, report = validate(bars, source=SOURCE, on_error="drop")

    bad = [("AAA", DAYS[0]), ("AAA", DAYS[5]), ("CCC", DAYS[3])]
    pd.testing.assert_frame_equal(out, good_bars().drop(index=bad))
    assert report.dropped == {
        "missing or non-finite values": 1,
        "negative volume": 1,
        "low above open or close": 1,
    }


def test_validate_does_not_mutate_its_input() -> None:
    bars = corrupted(_negative_volume)
    before = bars.copy()

    validate(bars, source=SOURCE, on_error="drop")
    with pytest.raises(BarError):
        validate(bars, source=SOURCE)

    pd.testing.assert_frame_equal(bars, before)


def test_the_real_sample_passes_validation_untouched(sample_bars: pd.DataFrame) -> None:
    out, report = validate(sample_bars, source="data/sample", on_error="drop")

    pd.testing.assert_frame_equal(out, sample_bars)
    assert report.dropped == {}
    assert report.rows_in == report.rows_out == len(sample_bars)


# ---------------------------------------------------------------- structure: always refused


def _missing_column(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.drop(columns=["volume"])


def _naive_times(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.set_axis(
        bars.index.set_levels(bars.index.levels[1].tz_localize(None), level="time")
    )


def _new_york_times(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.set_axis(
        bars.index.set_levels(bars.index.levels[1].tz_convert("America/New_York"), level="time")
    )


def _wrong_index_names(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.rename_axis(["ticker", "date"])


def _empty(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.iloc[:0]


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (_missing_column, r"missing columns \['volume'\]"),
        (_naive_times, "must be UTC"),
        (_new_york_times, "must be UTC"),
        (_wrong_index_names, r"index must be \(symbol, time\)"),
        (_empty, "no bars"),
    ],
    ids=["missing_column", "naive_times", "new_york_times", "wrong_index_names", "empty"],
)
@pytest.mark.parametrize("on_error", ["raise", "drop"])
def test_validate_always_refuses_structural_problems(
    broken: Callable[[pd.DataFrame], pd.DataFrame], message: str, on_error: str
) -> None:
    bars = broken(good_bars())

    with pytest.raises(BarError, match=message) as err:
        validate(bars, source=SOURCE, on_error=on_error)  # type: ignore[arg-type]

    assert str(err.value).startswith(SOURCE)


# ---------------------------------------------------------------- make_bars


def test_make_bars_sorts_sets_the_symbol_makes_times_utc_and_keeps_only_float_columns() -> None:
    raw = pd.DataFrame(
        {
            "time": ["2021-01-05", "2021-01-04"],
            "open": [2, 1],
            "high": [3, 2],
            "low": [1, 1],
            "close": [2, 2],
            "volume": [10, 20],
            "note": ["x", "y"],
        }
    )

    bars = make_bars(raw, symbol="XYZ")

    assert list(bars.index) == [
        ("XYZ", pd.Timestamp("2021-01-04", tz="UTC")),
        ("XYZ", pd.Timestamp("2021-01-05", tz="UTC")),
    ]
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    np.testing.assert_array_equal(bars["volume"].to_numpy(), [20.0, 10.0])
    assert "symbol" not in raw.columns  # the input is left alone
    validate(bars, source="make_bars")
