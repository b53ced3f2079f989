"""Warnings and calendars: gaps against the interval and the NYSE sessions, price jumps against a
robust causal scale, zero volume. Real data first: the bundled sample is a complete record of
NYSE sessions, so it must show no gap, and its real crashes must be reported, never dropped."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import BarError, make_bars, validate
from mlalgo.calendars import closed_reason, easter, missing_sessions, sessions
from mlalgo.quality import GAP, JUMP, OFF_SESSION, ZERO_VOLUME, robust_scale

SOURCE = "data/sample"


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def kinds(report, kind: str) -> list[tuple[str, pd.Timestamp]]:
    return [(p.symbol, p.time) for p in report.problems if p.kind == kind]


def minute_bars(times: pd.DatetimeIndex, symbol: str = "BTCUSDT") -> pd.DataFrame:
    """Flat but valid bars at the given times."""
    n = len(times)
    prices = 100.0 + np.sin(np.arange(n)) * 0.1
    frame = pd.DataFrame(
        {
            "time": times,
            "open": prices,
            "high": prices + 0.2,
            "low": prices - 0.2,
            "close": prices + 0.05,
            "volume": 1.0,
        }
    )
    return make_bars(frame, symbol=symbol)


# ---------------------------------------------------------------- the real sample


def test_the_sample_has_no_errors_and_no_gaps_on_the_nyse_calendar(
    sample_bars: pd.DataFrame,
) -> None:
    out, report = validate(sample_bars, source=SOURCE, interval="1d", calendar="NYSE")

    pd.testing.assert_frame_equal(out, sample_bars)
    assert report.ok
    assert kinds(report, GAP) == kinds(report, OFF_SESSION) == []
    assert set(report.counts()) == {JUMP}  # real crashes and rallies only


def test_apples_halving_on_2000_09_29_is_a_warning_and_the_bar_is_kept(
    sample_bars: pd.DataFrame,
) -> None:
    day = utc("2000-09-29")

    out, report = validate(sample_bars, source=SOURCE, on_error="drop", interval="1d")

    (jump,) = [p for p in report.warnings if p.kind == JUMP and p.symbol == "AAPL"]
    assert (jump.severity, jump.time) == ("warning", day)
    assert "(-51.9%)" in jump.detail
    assert ("AAPL", day) in out.index
    assert report.dropped == {}


@pytest.mark.parametrize(
    ("symbol", "day", "previous"),
    [
        ("IBM", "2005-03-04", "2005-03-03"),
        ("MSFT", "2001-09-17", "2001-09-10"),  # the first session after 9/11
        ("SPX", "2012-10-31", "2012-10-26"),  # the first session after Sandy
        ("AAPL", "2004-06-14", "2004-06-10"),  # Monday after Reagan's funeral
        ("SPX", "2007-01-03", "2006-12-29"),  # after New Year and Ford's funeral
    ],
)
def test_a_bar_removed_from_the_sample_is_exactly_one_gap_at_its_date(
    sample_bars: pd.DataFrame, symbol: str, day: str, previous: str
) -> None:
    bars = sample_bars.drop(index=[(symbol, utc(day))])

    _, report = validate(bars, source=SOURCE, interval="1d", calendar="NYSE")

    (gap,) = [p for p in report.problems if p.kind == GAP]
    assert (gap.symbol, gap.time, gap.severity) == (symbol, utc(day), "warning")
    assert gap.detail.startswith(f"1 missing NYSE session: {day} (previous bar {previous}")


def test_strict_turns_a_gap_into_an_error_under_every_policy(sample_bars: pd.DataFrame) -> None:
    bars = sample_bars.drop(index=[("IBM", utc("2005-03-04"))])

    for policy in ("fail", "drop", "repair"):
        with pytest.raises(BarError) as err:
            validate(bars, source=SOURCE, on_error=policy, interval="1d", calendar="NYSE",
                     jump_sigma=1e9, strict=True)  # fmt: skip
        assert str(err.value).startswith(
            f"{SOURCE}: 1 gap in the bars (first at IBM 2005-03-04T00:00Z); fetch the missing"
        )
        assert err.value.report is not None
        assert [p.severity for p in err.value.report.problems] == ["error"]


def test_strict_refuses_the_real_jumps_too(sample_bars: pd.DataFrame) -> None:
    with pytest.raises(BarError, match=r"rows with price jump \(first at AAPL 2000-09-29T00:00Z\)"):
        validate(sample_bars, source=SOURCE, strict=True)


def test_the_nyse_calendar_refuses_years_it_does_not_know() -> None:
    bars = minute_bars(pd.date_range("1989-12-28", periods=5, freq="B", tz="UTC"), "OLD")

    with pytest.raises(BarError, match=r"^old\.csv: the NYSE calendar covers 1990 onwards"):
        validate(bars, source="old.csv", interval="1d", calendar="NYSE")


# ---------------------------------------------------------------- 24/7 gaps


def test_a_missing_minute_of_crypto_is_one_gap_under_24_7() -> None:
    times = pd.date_range("2024-03-01", periods=120, freq="1min", tz="UTC")
    bars = minute_bars(times.delete(57))

    _, report = validate(bars, source="binance", interval="1m")

    assert report.counts() == {GAP: 1}
    (gap,) = report.warnings
    assert (gap.symbol, gap.time) == ("BTCUSDT", times[57])
    assert gap.detail == "1 missing 1m bar between 2024-03-01T00:56Z and 2024-03-01T00:58Z"


def test_a_run_of_missing_hours_is_one_gap_counting_them_and_symbols_do_not_mix() -> None:
    times = pd.date_range("2024-03-01", periods=48, freq="1h", tz="UTC")
    bars = pd.concat(
        [minute_bars(times.delete([10, 11, 12]), "ETHUSDT"), minute_bars(times[30:], "BTCUSDT")]
    ).sort_index()

    _, report = validate(bars, source="binance", interval="1h")

    assert [(p.symbol, p.time, p.detail[:21]) for p in report.warnings] == [
        ("ETHUSDT", times[10], "3 missing 1h bars bet")
    ]


def test_without_an_interval_there_is_no_gap_check() -> None:
    times = pd.date_range("2024-03-01", periods=30, freq="1min", tz="UTC")

    _, report = validate(minute_bars(times.delete(5)), source="binance")

    assert report.problems == ()


def test_an_unknown_interval_or_calendar_is_a_bar_error_naming_the_choices() -> None:
    bars = minute_bars(pd.date_range("2024-03-01", periods=3, freq="1min", tz="UTC"))

    with pytest.raises(BarError, match="unknown interval '5m'; expected one of 1m, 1h, 1d"):
        validate(bars, source="x", interval="5m")
    with pytest.raises(BarError, match="unknown calendar 'LSE'; expected one of 24/7, NYSE"):
        validate(bars, source="x", calendar="LSE")


# ---------------------------------------------------------------- NYSE details


def test_a_daily_bar_on_a_closed_day_is_flagged_with_the_reason() -> None:
    days = pd.DatetimeIndex(["2010-03-31", "2010-04-01", "2010-04-02", "2010-04-05"], tz="UTC")

    _, report = validate(minute_bars(days, "SPY"), source="x", interval="1d", calendar="NYSE")

    (problem,) = report.warnings
    assert (problem.kind, problem.time) == (OFF_SESSION, utc("2010-04-02"))
    assert problem.detail == "2010-04-02 is closed (Good Friday)"


def test_intraday_equity_bars_are_checked_for_session_days_and_regular_hours_only() -> None:
    # Hourly bars stamped 13:30Z..19:30Z (09:30..15:30 New York, EDT) on 2012-10-24..11-02.
    days = pd.date_range("2012-10-24", "2012-11-02", freq="D", tz="UTC")
    times = pd.DatetimeIndex([d + pd.Timedelta(hours=13.5 + h) for d in days for h in range(7)])
    keep = (times.day_of_week < 5) & ~times.normalize().isin([utc("2012-10-29"), utc("2012-10-30")])
    early = pd.DatetimeIndex([utc("2012-10-31 12:00")])  # 08:00 New York: pre-market
    sandy = pd.DatetimeIndex([utc("2012-10-29 15:30")])  # the exchange was closed
    missing_day = times.normalize() == utc("2012-11-01")
    bars = minute_bars(times[keep & ~missing_day].append(early).append(sandy).sort_values(), "IBM")

    _, report = validate(bars, source="x", interval="1h", calendar="NYSE")

    assert kinds(report, OFF_SESSION) == [("IBM", sandy[0]), ("IBM", early[0])]
    # a whole session without a bar is a gap, stamped at its opening bell
    assert kinds(report, GAP) == [("IBM", utc("2012-11-01 13:30"))]


# ---------------------------------------------------------------- jumps and volume


def test_the_robust_scale_is_causal_and_ignores_a_single_outlier() -> None:
    rng = np.random.default_rng(7)
    r = np.abs(rng.normal(0, 0.01, 300))
    scale = robust_scale(r)
    shocked = r.copy()
    shocked[200] = 0.5

    after = robust_scale(shocked)

    np.testing.assert_array_equal(after[:201], scale[:201])  # bar 200 is judged before it counts
    assert np.isnan(scale[:20]).all() and np.isfinite(scale[20:]).all()
    assert np.nanmax(np.abs(after[201:] / scale[201:] - 1)) < 0.1
    assert 0.007 < np.median(scale[20:]) < 0.013  # ~ sigma


def test_a_jump_in_synthetic_bars_is_reported_at_its_bar_and_kept() -> None:
    times = pd.date_range("2024-03-01", periods=100, freq="1h", tz="UTC")
    bars = minute_bars(times)
    bars.loc[bars.index[70:], ["open", "high", "low", "close"]] *= 1.3

    out, report = validate(bars, source="x", on_error="drop", interval="1h")

    assert kinds(report, JUMP) == [("BTCUSDT", times[70])]
    pd.testing.assert_frame_equal(out, bars)


def test_zero_volume_is_a_warning_and_the_bar_is_kept() -> None:
    times = pd.date_range("2024-03-01", periods=10, freq="1min", tz="UTC")
    bars = minute_bars(times)
    bars.loc[bars.index[4], "volume"] = 0.0

    out, report = validate(bars, source="x")

    assert [(p.kind, p.time, p.severity) for p in report.problems] == [
        (ZERO_VOLUME, times[4], "warning")
    ]
    assert report.ok and len(out) == 10


# ---------------------------------------------------------------- the calendar itself


def test_every_sample_date_is_a_session_and_every_session_has_a_bar(
    sample_bars: pd.DataFrame,
) -> None:
    for symbol, group in sample_bars.groupby(level="symbol"):
        days = group.index.get_level_values("time")
        expected = sessions("NYSE", days[0], days[-1])
        assert days.equals(expected), symbol
        assert missing_sessions("NYSE", days) == []
    spx = sample_bars.loc["SPX"].index
    assert (spx[0], spx[-1], len(spx)) == (utc("1999-01-04"), utc("2018-12-31"), 5031)


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        ("1994-04-27", "funeral of Richard Nixon"),
        ("1998-01-19", "Martin Luther King Jr. Day"),
        ("2001-09-11", "September 11 attacks"),
        ("2001-09-14", "September 11 attacks"),
        ("2004-06-11", "funeral of Ronald Reagan"),
        ("2007-01-02", "funeral of Gerald Ford"),
        ("2010-04-02", "Good Friday"),
        ("2010-12-24", "Christmas"),  # Saturday Christmas: the Friday before
        ("2012-01-02", "New Year's Day"),  # Sunday New Year: the Monday after
        ("2012-10-29", "Hurricane Sandy"),
        ("2012-10-30", "Hurricane Sandy"),
        ("2015-07-03", "Independence Day"),
        ("2018-12-05", "funeral of George H. W. Bush"),
        ("2022-06-20", "Juneteenth"),  # Sunday Juneteenth: the Monday after
        ("2025-01-09", "funeral of Jimmy Carter"),
        ("2027-06-18", "Juneteenth"),  # Saturday Juneteenth: the Friday before
        ("2024-11-28", "Thanksgiving"),
        ("2024-05-27", "Memorial Day"),
        ("2024-09-02", "Labor Day"),
        ("2024-02-19", "Washington's Birthday"),
        ("2024-03-30", "Saturday"),
    ],
)
def test_nyse_closed_days(day: str, reason: str) -> None:
    assert closed_reason("NYSE", dt.date.fromisoformat(day)) == reason
    assert utc(day) not in sessions("NYSE", day, day)


@pytest.mark.parametrize(
    "day",
    [
        "2010-12-31",  # New Year 2011 is a Saturday: NYSE does not close the Friday before
        "2011-01-03",  # ... nor the Monday after
        "2021-12-31",  # same in 2022
        "1997-01-20",  # MLK day before the NYSE observed it (1998)
        "2021-06-18",  # Juneteenth before the NYSE observed it (2022)
        "2012-10-31",  # reopened after Sandy
        "2001-09-17",  # reopened after 9/11
        "2024-11-29",  # the day after Thanksgiving closes early but is a session
    ],
)
def test_nyse_open_days(day: str) -> None:
    assert closed_reason("NYSE", dt.date.fromisoformat(day)) is None
    assert list(sessions("NYSE", day, day)) == [utc(day)]


def test_easter_by_computus_matches_known_dates() -> None:
    known = ["1999-04-04", "2000-04-23", "2008-03-23", "2011-04-24", "2019-04-21", "2038-04-25"]
    for day in known:
        assert easter(int(day[:4])) == dt.date.fromisoformat(day)


def test_the_24_7_calendar_has_every_day() -> None:
    days = sessions("24/7", "2024-02-27", "2024-03-02")

    assert days.strftime("%m-%d").tolist() == ["02-27", "02-28", "02-29", "03-01", "03-02"]
    assert str(days.tz) == "UTC"
    with pytest.raises(ValueError, match="unknown calendar 'LSE'"):
        sessions("LSE", "2024-01-01", "2024-01-02")
