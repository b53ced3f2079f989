"""Trading sessions, so gap checks know a holiday from a hole in the data.

Two calendars: ``"24/7"`` (crypto: every day is a session) and ``"NYSE"``. The NYSE calendar is
rules plus a table, with no dependency: full-day holidays by rule (New Year's Day, Martin Luther
King Jr. Day from 1998, Washington's Birthday, Good Friday, Memorial Day, Juneteenth from 2022,
Independence Day, Labor Day, Thanksgiving, Christmas) and the special closures since 1990.

Weekend observance follows NYSE Rule 7.2: a Sunday holiday closes the Monday after, a Saturday
holiday closes the Friday before -- except New Year's Day, because the Friday before is the last
trading day of the year (2010-12-31 and 2021-12-31 were sessions). Early closes (13:00) are
sessions. The calendar is checked against the bundled sample (every NYSE session 1999-2018) and
covers 1990 onwards; earlier years had other closures and are refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

Calendar = Literal["24/7", "NYSE"]
CALENDARS: tuple[str, ...] = ("24/7", "NYSE")

NYSE_TZ = "America/New_York"
NYSE_OPEN = dt.time(9, 30)
NYSE_CLOSE = dt.time(16, 0)
NYSE_FIRST_YEAR = 1990

# Full-day closures not given by a rule: national days of mourning, 9/11, Hurricane Sandy.
NYSE_SPECIAL_CLOSURES: dict[dt.date, str] = {
    dt.date(1994, 4, 27): "funeral of Richard Nixon",
    dt.date(2001, 9, 11): "September 11 attacks",
    dt.date(2001, 9, 12): "September 11 attacks",
    dt.date(2001, 9, 13): "September 11 attacks",
    dt.date(2001, 9, 14): "September 11 attacks",
    dt.date(2004, 6, 11): "funeral of Ronald Reagan",
    dt.date(2007, 1, 2): "funeral of Gerald Ford",
    dt.date(2012, 10, 29): "Hurricane Sandy",
    dt.date(2012, 10, 30): "Hurricane Sandy",
    dt.date(2018, 12, 5): "funeral of George H. W. Bush",
    dt.date(2025, 1, 9): "funeral of Jimmy Carter",
}


def check_calendar(calendar: str) -> None:
    """Refuse an unknown calendar name, listing the known ones."""
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r}; expected one of {', '.join(CALENDARS)}")


def easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@lru_cache(maxsize=256)
def nyse_holidays(year: int) -> dict[dt.date, str]:
    """Every weekday the NYSE is closed in ``year``, with the reason."""
    if year < NYSE_FIRST_YEAR:
        raise ValueError(
            f"the NYSE calendar covers {NYSE_FIRST_YEAR} onwards, not {year}; "
            'use calendar "24/7" or no interval to skip session checks'
        )
    closed: dict[dt.date, str] = {}
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # Saturday: the Friday before (Dec 31) stays open
        closed[_observed(new_year)] = "New Year's Day"
    if year >= 1998:
        closed[_nth_weekday(year, 1, 0, 3)] = "Martin Luther King Jr. Day"
    closed[_nth_weekday(year, 2, 0, 3)] = "Washington's Birthday"
    closed[easter(year) - dt.timedelta(days=2)] = "Good Friday"
    closed[_nth_weekday(year, 5, 0, -1)] = "Memorial Day"
    if year >= 2022:
        closed[_observed(dt.date(year, 6, 19))] = "Juneteenth"
    closed[_observed(dt.date(year, 7, 4))] = "Independence Day"
    closed[_nth_weekday(year, 9, 0, 1)] = "Labor Day"
    closed[_nth_weekday(year, 11, 3, 4)] = "Thanksgiving"
    closed[_observed(dt.date(year, 12, 25))] = "Christmas"
    closed.update({d: why for d, why in NYSE_SPECIAL_CLOSURES.items() if d.year == year})
    return closed


def closed_reason(calendar: str, day: dt.date) -> str | None:
    """Why ``day`` is not a session (``"Saturday"``, ``"Good Friday"``), or None if it is."""
    check_calendar(calendar)
    if calendar == "24/7":
        return None
    if day.weekday() >= 5:
        return day.strftime("%A")
    return nyse_holidays(day.year).get(day)


def sessions(calendar: str, start: object, end: object) -> pd.DatetimeIndex:
    """Session days from ``start`` to ``end`` inclusive, as UTC midnights.

    >>> sessions("NYSE", "2012-10-26", "2012-11-01").strftime("%m-%d").tolist()
    ['10-26', '10-31', '11-01']
    """
    check_calendar(calendar)
    first = pd.Timestamp(start).date()  # type: ignore[arg-type]
    last = pd.Timestamp(end).date()  # type: ignore[arg-type]
    days = pd.date_range(first, last, freq="D", tz="UTC", name="time")
    if calendar == "24/7" or len(days) == 0:
        return days
    closed = set()
    for year in range(first.year, last.year + 1):
        closed.update(nyse_holidays(year))
    is_open = (days.day_of_week < 5) & ~days.normalize().tz_localize(None).isin(
        pd.DatetimeIndex(sorted(closed))
    )
    return days[is_open]


def missing_sessions(calendar: str, days: pd.DatetimeIndex) -> list[pd.DatetimeIndex]:
    """Runs of consecutive sessions, between the first and last of ``days``, with no day there.

    >>> [r.strftime("%d").tolist() for r in missing_sessions("24/7", pd.DatetimeIndex(
    ...     ["2024-01-01", "2024-01-04", "2024-01-05", "2024-01-07"], tz="UTC"))]
    [['02', '03'], ['06']]
    """
    expected = sessions(calendar, days.min(), days.max())
    missing = ~expected.isin(days)
    starts = np.flatnonzero(missing & ~np.r_[False, missing[:-1]])
    stops = np.flatnonzero(missing & ~np.r_[missing[1:], False]) + 1
    return [expected[a:b] for a, b in zip(starts, stops, strict=True)]


def _observed(day: dt.date) -> dt.date:
    """Sunday holidays move to Monday, Saturday ones to Friday."""
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The ``n``-th ``weekday`` (Monday=0) of the month; ``n=-1`` is the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)
