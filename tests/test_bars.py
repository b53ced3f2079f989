"""The bar schema gate: every bad row is refused with a message that says how to proceed, dropped
and counted, or repaired and flagged; structural problems are always refused, and no input, however
broken, escapes as anything but a BarError that names its source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlalgo.bars import BarError, format_report, make_bars, validate, validate_file

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
@pytest.mark.parametrize("on_error", ["fail", "raise", "drop", "repair"])
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


# ---------------------------------------------------------------- fail: every kind, one line each

REPAIRABLE = {"high < low", "high below open or close", "low above open or close"}


@pytest.mark.parametrize(
    ("corrupt", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_fail_lists_every_error_kind_on_its_own_line_and_offers_repair_where_it_applies(
    corrupt: Corrupt, expected: dict[str, int]
) -> None:
    with pytest.raises(BarError) as err:
        validate(corrupted(corrupt), source=SOURCE, on_error="fail")

    lines = str(err.value).splitlines()
    assert len(lines) == len(expected)
    for line, (kind, n) in zip(lines, expected.items(), strict=True):
        assert line.startswith(f"{SOURCE}: {n} rows with {kind} (first at BBB 2021-03-03T00:00Z)")
        assert HINT in line
        assert ("or repair to widen high and low" in line) == (kind in REPAIRABLE)
    report = err.value.report
    assert report is not None and not report.ok
    assert report.counts() == expected


def test_raise_is_the_old_name_of_fail() -> None:
    bars = corrupted(_nan)
    messages = []
    for policy in ("raise", "fail"):
        with pytest.raises(BarError) as err:
            validate(bars, source=SOURCE, on_error=policy)  # type: ignore[arg-type]
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_an_unknown_policy_is_refused_naming_the_choices() -> None:
    with pytest.raises(BarError, match="on_error must be fail, drop or repair"):
        validate(good_bars(), source=SOURCE, on_error="ignore")  # type: ignore[arg-type]


def test_drop_records_each_dropped_row_as_an_error_problem() -> None:
    out, report = validate(corrupted(_negative_volume), source=SOURCE, on_error="drop")

    assert not report.ok  # the input had errors; the output is clean
    assert [(p.kind, p.severity, p.symbol, p.time) for p in report.errors] == [
        ("negative volume", "error", "BBB", DAYS[2]),
        ("negative volume", "error", "CCC", DAYS[1]),
    ]
    assert report.errors[0].detail == "volume is -5; dropped"
    assert validate(out, source=SOURCE)[1].ok


# ---------------------------------------------------------------- repair


@pytest.mark.parametrize("corrupt", [_nan, _non_positive, _negative_volume], ids=str)
def test_repair_drops_what_cannot_be_fixed_without_inventing_data(corrupt: Corrupt) -> None:
    out, report = validate(corrupted(corrupt), source=SOURCE, on_error="repair")

    pd.testing.assert_frame_equal(out, good_bars().drop(index=BAD_ROWS))
    assert report.repaired == {}
    assert sum(report.dropped.values()) == 2
    assert all(p.detail.endswith("dropped (not repairable)") for p in report.errors)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [(c[1], c[2]) for c in CASES if set(c[2]) <= REPAIRABLE],
    ids=[c[0] for c in CASES if set(c[2]) <= REPAIRABLE],
)
def test_repair_widens_high_and_low_to_contain_open_and_close_and_flags_it(
    corrupt: Corrupt, expected: dict[str, int]
) -> None:
    bars = corrupted(corrupt)

    out, report = validate(bars, source=SOURCE, on_error="repair")

    prices = bars[["open", "high", "low", "close"]]
    want = bars.assign(high=prices.max(axis=1), low=prices.min(axis=1))
    pd.testing.assert_frame_equal(out, want)
    untouched = good_bars().drop(index=BAD_ROWS)
    pd.testing.assert_frame_equal(out.drop(index=BAD_ROWS), untouched)
    assert report.repaired == expected
    assert report.dropped == {}
    assert (report.rows_in, report.rows_out) == (18, 18)
    assert all("; repaired: " in p.detail for p in report.errors)
    assert validate(out, source=SOURCE)[1].ok


def test_repair_reports_exactly_what_changed() -> None:
    bars = good_bars()
    set_values(bars, ("AAA", DAYS[1]), high=100.5)  # open 101, close 102: high must be 102

    _, report = validate(bars, source=SOURCE, on_error="repair")

    (problem,) = report.errors
    assert (problem.kind, problem.symbol, problem.time) == (
        "high below open or close",
        "AAA",
        DAYS[1],
    )
    assert problem.detail == "high 100.5 < max(open 101, close 102); repaired: high 100.5 -> 102"


def test_repair_keeps_the_last_of_repeated_bars_because_the_latest_write_wins() -> None:
    bars = good_bars()
    newer = bars.loc[BAD_ROWS].assign(close=lambda f: f["close"] + 0.5, volume=7.0)
    both = pd.concat([bars, newer]).sort_index(kind="stable")

    out, report = validate(both, source=SOURCE, on_error="repair")

    want = bars.copy()
    for row in BAD_ROWS:
        set_values(want, row, close=newer.loc[row, "close"], volume=7.0)
    pd.testing.assert_frame_equal(out, want)
    assert report.repaired == {"duplicate times": 2}
    assert (report.rows_in, report.rows_out) == (20, 18)
    assert all("replaced by the last bar" in p.detail for p in report.errors)


def test_repair_and_drop_handle_mixed_problems_in_one_pass() -> None:
    bars = good_bars()
    set_values(bars, ("AAA", DAYS[0]), volume=np.inf)
    _low_above_open_close(bars, ("CCC", DAYS[3]))
    _negative_volume(bars, ("BBB", DAYS[4]))

    out, report = validate(bars, source=SOURCE, on_error="repair")

    assert report.dropped == {"missing or non-finite values": 1, "negative volume": 1}
    assert report.repaired == {"low above open or close": 1}
    assert out.loc[("CCC", DAYS[3]), "low"] == out.loc[("CCC", DAYS[3]), "open"]
    assert len(out) == 16


def test_repair_does_not_mutate_its_input() -> None:
    bars = corrupted(_high_below_low)
    before = bars.copy()

    validate(bars, source=SOURCE, on_error="repair")

    pd.testing.assert_frame_equal(bars, before)


def test_a_policy_that_leaves_no_bars_is_refused() -> None:
    bars = good_bars().assign(volume=-1.0)

    with pytest.raises(BarError, match=f"^{SOURCE}: every one of the 18 bars has errors"):
        validate(bars, source=SOURCE, on_error="drop")


# ---------------------------------------------------------------- numbers that are not numbers


def test_a_column_of_strings_is_refused_naming_the_cell_and_the_fix() -> None:
    bars = good_bars().astype({"close": object})
    bars.iloc[3, bars.columns.get_loc("close")] = "1.0x"

    with pytest.raises(BarError) as err:
        validate(bars, source=SOURCE, on_error="drop")

    assert str(err.value).startswith(
        f"{SOURCE}: column close is not numeric: '1.0x' at row 3 (AAA 2021-03-04T00:00Z); "
    )
    assert "pd.to_numeric" in str(err.value)


def test_numeric_strings_and_nullable_columns_are_coerced_to_float() -> None:
    bars = good_bars()
    text = bars.assign(
        open=bars["open"].map(repr).astype(object), volume=bars["volume"].astype("Int64")
    )

    out, report = validate(text, source=SOURCE)

    pd.testing.assert_frame_equal(out, bars)
    assert report.ok


def test_missing_cells_in_a_nullable_column_are_non_finite_values() -> None:
    bars = good_bars().astype({"volume": "Float64"})
    bars.iloc[0, bars.columns.get_loc("volume")] = pd.NA

    out, report = validate(bars, source=SOURCE, on_error="drop")

    assert report.dropped == {"missing or non-finite values": 1}
    assert out["volume"].dtype == np.float64


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"time": ["2021-01-04", "not a date"]}, "column time has values that are not dates"),
        ({"time": ["2021-01-04", "2021-01-05"], "close": ["1", "2x"]}, "column close is not"),
    ],
    ids=["bad_date", "bad_number"],
)
def test_make_bars_turns_unparseable_cells_into_a_bar_error(raw: dict, message: str) -> None:
    frame = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0, **raw})

    with pytest.raises(BarError, match=f"^prices.csv: {message}"):
        make_bars(frame, symbol="XYZ", source="prices.csv")


# ---------------------------------------------------------------- the report


def test_the_report_summarises_counts_first_occurrences_and_fixes() -> None:
    bars = corrupted(_high_below_open_close)
    set_values(bars, ("AAA", DAYS[5]), volume=0.0)

    _, report = validate(bars, source=SOURCE, on_error="repair")

    summary = report.summary()
    assert summary.splitlines()[0] == f"{SOURCE}: 18 bars in, 18 out; 2 errors, 1 warnings"
    assert "error   high below open or close: 2 (first at BBB 2021-03-03T00:00Z" in summary
    assert "or repair to widen high and low" in summary
    assert "warning zero volume: 1 (first at AAA 2021-03-06T00:00Z: volume is 0)" in summary
    assert "repaired: 2 high below open or close" in summary
    assert report.warnings[0].severity == "warning"
    assert format_report(report).splitlines()[-1] == "FAILED: 2 errors"


def test_the_report_is_json_for_the_mlflow_artifact() -> None:
    _, report = validate(corrupted(_nan), source=SOURCE, on_error="drop")

    data = json.loads(json.dumps(report.to_dict()))

    assert data["source"] == SOURCE
    assert (data["ok"], data["rows_in"], data["rows_out"]) == (False, 18, 16)
    assert data["dropped"] == {"missing or non-finite values": 2}
    assert data["problems"][0] == {
        "kind": "missing or non-finite values",
        "severity": "error",
        "symbol": "BBB",
        "time": "2021-03-03T00:00Z",
        "detail": "close is nan; dropped",
    }


def test_validate_file_reports_every_problem_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    bars = corrupted(_low_above_open_close).reset_index()
    bars["time"] = bars["time"].dt.strftime("%Y-%m-%d")
    bars.to_csv(path, index=False)

    report = validate_file(path, interval="1d")

    assert report.source == str(path)
    assert report.counts() == {"low above open or close": 2, "gap": 2}  # the dropped rows
    assert not report.ok
    assert format_report(report).endswith("FAILED: 2 errors")


def test_validate_file_names_the_file_when_it_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    pd.DataFrame(
        {
            "time": ["2021-01-04"],
            "open": ["1.0x"],
            "high": [2],
            "low": [1],
            "close": [1],
            "volume": [1],
        }
    ).to_csv(path, index=False)

    with pytest.raises(BarError, match=f"^{path}: column open is not numeric: '1.0x' at row 0"):
        validate_file(path, symbol="XYZ")
    with pytest.raises(BarError, match="no such file"):
        validate_file(tmp_path / "missing.csv")


# ---------------------------------------------------------------- no tracebacks from pandas


def _with_times(bars: pd.DataFrame, times: pd.Index) -> pd.DataFrame:
    symbols = bars.index.get_level_values("symbol")
    return bars.set_axis(pd.MultiIndex.from_arrays([symbols, times], names=list(INDEX_NAMES)))


INDEX_NAMES = ("symbol", "time")
CELL_VALUES = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, 1e-300]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def broken_bars(draw: st.DrawFn) -> pd.DataFrame:
    """good_bars() with a random subset of the ways bars arrive broken."""
    bars = good_bars()
    n = len(bars)
    row = st.integers(0, n - 1)
    for _ in range(draw(st.integers(0, 4))):  # bad values anywhere
        col = draw(st.sampled_from(list(bars.columns)))
        bars.iloc[draw(row), bars.columns.get_loc(col)] = draw(CELL_VALUES)
    if draw(st.booleans()):  # high below low
        i = draw(row)
        high, low = bars.iloc[i]["high"], bars.iloc[i]["low"]
        bars.iloc[i, bars.columns.get_loc("high")] = low
        bars.iloc[i, bars.columns.get_loc("low")] = high
    if draw(st.booleans()):  # text in a numeric column
        col = draw(st.sampled_from(list(bars.columns)))
        bars = bars.astype({col: object})
        text = draw(st.sampled_from(["1.0x", "", "nan", " 5 ", "inf", "abc", "1e3"]))
        bars.iloc[draw(row), bars.columns.get_loc(col)] = text
    if draw(st.booleans()):  # repeated bars
        bars = pd.concat([bars, bars.iloc[draw(st.lists(row, max_size=3))]])
        bars = bars.sort_index(kind="stable")
    if draw(st.booleans()):  # shuffled
        bars = bars.iloc[draw(st.permutations(range(len(bars))))]
    times = bars.index.get_level_values("time")
    structural = draw(
        st.sampled_from(["none"] * 6 + ["naive", "nat", "missing", "empty", "names", "strings"])
    )
    if structural == "naive":
        bars = _with_times(bars, times.tz_localize(None))
    elif structural == "nat":
        bars = _with_times(bars, times.where(np.arange(len(times)) != 0))
    elif structural == "missing":
        bars = bars.drop(columns=[draw(st.sampled_from(list(bars.columns)))])
    elif structural == "empty":
        bars = bars.iloc[:0]
    elif structural == "names":
        bars = bars.rename_axis(["ticker", "time"])
    elif structural == "strings":
        bars = _with_times(bars, times.strftime("%Y-%m-%d"))
    return bars


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=broken_bars(), policy=st.sampled_from(["fail", "drop", "repair"]))
def test_broken_bars_are_returned_clean_or_refused_with_a_bar_error_naming_the_source(
    bars: pd.DataFrame, policy: str
) -> None:
    before = bars.copy()
    try:
        out, report = validate(bars, source=SOURCE, on_error=policy)  # type: ignore[arg-type]
    except BarError as err:
        assert all(line.startswith(f"{SOURCE}: ") for line in str(err).splitlines())
        return
    finally:
        pd.testing.assert_frame_equal(bars, before)
    assert report.rows_out == len(out) > 0
    assert all(out[c].dtype == np.float64 for c in ("open", "high", "low", "close", "volume"))
    again, clean = validate(out, source=SOURCE)  # what comes out passes the strictest policy
    assert clean.ok
    pd.testing.assert_frame_equal(again, out)
