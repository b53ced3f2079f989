"""Data-quality warnings: bars that are well-formed but suspicious.

A gap, a price jump or a zero-volume bar can be real (a halted stock, a crash, a quiet minute),
so these checks report and never drop: deleting a crash would flatter every backtest. They run on
bars that already passed the schema checks in :mod:`mlalgo.bars` (sorted, unique, finite,
positive) and return :class:`Problem` records; ``validate(..., strict=True)`` makes them errors.

Gaps are judged against the interval and a calendar (:mod:`mlalgo.calendars`):

- ``"24/7"``: every missing interval between consecutive bars of a symbol is a gap.
- ``"NYSE"`` with ``1d`` bars: every NYSE session without a bar (keyed by the bar's UTC date) is a
  gap, and a bar on a day that is not a session is flagged.
- ``"NYSE"`` with intraday bars: kept simple on purpose. Only whole sessions without any bar are
  gaps, and a bar whose New York time is not on a session day within regular hours
  (09:30-16:00) is flagged. Missing minutes inside a session are not reported: thinly traded
  stocks have many, and early closes (13:00) would need a second table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd

from mlalgo.calendars import NYSE_CLOSE, NYSE_OPEN, NYSE_TZ, closed_reason, sessions
from mlalgo.data.intervals import interval_ms

Severity = Literal["error", "warning"]

GAP = "gap"
JUMP = "price jump"
ZERO_VOLUME = "zero volume"
OFF_SESSION = "time outside sessions"
JUMP_WINDOW = 60
JUMP_MIN_PERIODS = 20
MAD_TO_SIGMA = 1.4826  # median(|x|) of a normal is 0.6745 sigma
MEAN_ABS_TO_SIGMA = 1.2533  # mean(|x|) of a normal is sqrt(2/pi) sigma

WARNING_FIXES: dict[str, str] = {
    GAP: "fetch the missing bars again, or check the interval and the calendar",
    JUMP: "check for an unadjusted split or a bad print; real moves are kept",
    ZERO_VOLUME: "nothing traded: fine for quiet markets, suspicious for liquid ones",
    OFF_SESSION: "check the calendar, the time zone and the interval of the source",
}


@dataclass(frozen=True)
class Problem:
    """One finding about one bar (or, for a gap, the first missing bar), as data not text.

    Kept as records so the CLI, the MLflow artifact and tests can count, filter and show them
    without parsing messages.
    """

    kind: str
    severity: Severity
    symbol: str
    time: pd.Timestamp
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "symbol": str(self.symbol),
            "time": stamp(self.time),
            "detail": self.detail,
        }


def stamp(time: pd.Timestamp) -> str:
    """``2021-03-04T00:00Z``: the time format of every message about bars."""
    return "NaT" if pd.isna(time) else f"{time:%Y-%m-%dT%H:%MZ}"


def find_warnings(
    bars: pd.DataFrame,
    *,
    interval: str | None,
    calendar: str,
    jump_sigma: float,
) -> list[Problem]:
    """Every warning for schema-valid bars; gaps and sessions only when ``interval`` is given."""
    found: list[Problem] = []
    if interval is not None:
        found += gaps(bars, interval=interval, calendar=calendar)
    found += jumps(bars, sigma=jump_sigma)
    found += zero_volume(bars)
    return found


def gaps(bars: pd.DataFrame, *, interval: str, calendar: str) -> list[Problem]:
    """Missing bars (one Problem per run of them) and bars outside the calendar's sessions."""
    step = interval_ms(interval) * 1_000_000
    found: list[Problem] = []
    for symbol, times in _symbol_times(bars):
        if calendar == "24/7":
            found += _grid_gaps(symbol, times, step, interval)
        elif interval == "1d":
            found += _session_gaps(symbol, times.normalize(), calendar, daily=True)
        else:
            local = times.tz_convert(NYSE_TZ)
            days = local.normalize().tz_localize(None).tz_localize("UTC")
            found += _session_gaps(symbol, days, calendar, daily=False)
            found += _outside_hours(symbol, times, local)
    return found


def robust_scale(abs_returns: np.ndarray, window: int = JUMP_WINDOW) -> np.ndarray:
    """Causal robust sigma of returns: 1.4826 x median |r| over the ``window`` returns before t.

    The median about zero (not about the window's median) suits returns, whose median is ~0,
    and keeps it a plain rolling median. When more than half the returns are 0 (quiet minutes)
    it falls back to the mean absolute return; NaN until ``JUMP_MIN_PERIODS`` returns are seen.
    """
    rolling = pd.Series(abs_returns).rolling(window, min_periods=JUMP_MIN_PERIODS)
    scale = (rolling.median() * MAD_TO_SIGMA).shift(1).to_numpy()
    fallback = (rolling.mean() * MEAN_ABS_TO_SIGMA).shift(1).to_numpy()
    return np.where(scale > 0, scale, fallback)


def jumps(bars: pd.DataFrame, *, sigma: float) -> list[Problem]:
    """Bars whose close-to-close |log return| exceeds ``sigma`` x :func:`robust_scale`."""
    found: list[Problem] = []
    close = bars["close"].to_numpy(dtype=np.float64)
    for symbol, block in _symbol_blocks(bars):
        c = close[block]
        if len(c) < 2:
            continue
        ret = np.diff(np.log(c))
        scale = robust_scale(np.abs(ret))
        with np.errstate(invalid="ignore"):
            hits = np.flatnonzero((scale > 0) & (np.abs(ret) > sigma * scale))
        times = bars.index[block].get_level_values("time")
        for j in hits:
            found.append(
                Problem(
                    JUMP,
                    "warning",
                    symbol,
                    times[j + 1],
                    f"close {c[j]:.6g} -> {c[j + 1]:.6g}: log return {ret[j]:+.3f} is "
                    f"{abs(ret[j]) / scale[j]:.1f} x the robust scale {scale[j]:.3g} of the "
                    f"previous {JUMP_WINDOW} returns (limit {sigma:g})",
                )
            )
    return found


def zero_volume(bars: pd.DataFrame) -> list[Problem]:
    """Bars with volume exactly 0."""
    rows = np.flatnonzero(bars["volume"].to_numpy(dtype=np.float64) == 0)
    return [
        Problem(ZERO_VOLUME, "warning", str(sym), time, "volume is 0")
        for sym, time in bars.index[rows]
    ]


def _symbol_blocks(bars: pd.DataFrame) -> Iterator[tuple[str, slice]]:
    """(symbol, row slice) per symbol; bars are sorted, so each symbol is one block."""
    codes = np.asarray(bars.index.codes[0])
    edges = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]
    symbols = bars.index.get_level_values("symbol")
    for start, stop in pairwise(edges):
        if stop > start:
            yield str(symbols[start]), slice(start, stop)


def _symbol_times(bars: pd.DataFrame) -> Iterator[tuple[str, pd.DatetimeIndex]]:
    times = pd.DatetimeIndex(bars.index.get_level_values("time"))
    for symbol, block in _symbol_blocks(bars):
        yield symbol, times[block]


def _grid_gaps(symbol: str, times: pd.DatetimeIndex, step: int, interval: str) -> list[Problem]:
    ns = times.as_unit("ns").asi8
    delta = np.diff(ns)
    found = []
    for j in np.flatnonzero(delta > step):
        missing = int(-(-delta[j] // step)) - 1
        first = times[j] + pd.Timedelta(step, unit="ns")
        found.append(
            Problem(
                GAP,
                "warning",
                symbol,
                first,
                f"{missing} missing {interval} bar{'s' * (missing > 1)} between "
                f"{stamp(times[j])} and {stamp(times[j + 1])}",
            )
        )
    return found


def _session_gaps(symbol: str, days: pd.DatetimeIndex, calendar: str, daily: bool) -> list[Problem]:
    """Sessions without a bar, in runs, and (for daily bars) bars on days that are no session."""
    unique_days = days.unique()
    expected = sessions(calendar, unique_days[0], unique_days[-1])
    found = []
    missing = ~expected.isin(unique_days)
    run_starts = np.flatnonzero(missing & ~np.r_[False, missing[:-1]])
    for start in run_starts:
        stop = start
        while stop + 1 < len(expected) and missing[stop + 1]:
            stop += 1
        n = stop - start + 1
        span = f"{expected[start]:%Y-%m-%d}" + (f"..{expected[stop]:%Y-%m-%d}" if n > 1 else "")
        before = unique_days[unique_days.searchsorted(expected[start]) - 1]
        after = unique_days[unique_days.searchsorted(expected[stop])]
        found.append(
            Problem(
                GAP,
                "warning",
                symbol,
                _session_time(expected[start], daily),
                f"{n} missing {calendar} session{'s' * (n > 1)}: {span} (previous bar "
                f"{before:%Y-%m-%d}, next {after:%Y-%m-%d})",
            )
        )
    if daily:
        for day in unique_days[~unique_days.isin(expected)]:
            why = closed_reason(calendar, day.date())
            found.append(
                Problem(OFF_SESSION, "warning", symbol, day, f"{day:%Y-%m-%d} is closed ({why})")
            )
    return found


def _outside_hours(symbol: str, times: pd.DatetimeIndex, local: pd.DatetimeIndex) -> list[Problem]:
    minutes = local.hour * 60 + local.minute
    opens, closes = (t.hour * 60 + t.minute for t in (NYSE_OPEN, NYSE_CLOSE))
    dates = local.normalize().tz_localize(None)
    unique_dates = dates.unique()
    closed = unique_dates[[closed_reason("NYSE", d.date()) is not None for d in unique_dates]]
    closed_day = dates.isin(closed)
    outside = closed_day | (minutes < opens) | (minutes >= closes)
    return [
        Problem(
            OFF_SESSION,
            "warning",
            symbol,
            times[j],
            f"{local[j]:%Y-%m-%d %H:%M} New York is outside NYSE regular hours "
            f"({NYSE_OPEN:%H:%M}-{NYSE_CLOSE:%H:%M} on sessions)",
        )
        for j in np.flatnonzero(outside)
    ]


def _session_time(day: pd.Timestamp, daily: bool) -> pd.Timestamp:
    """A missing daily session is stamped at its UTC midnight, an intraday one at the open."""
    if daily:
        return day
    opening = pd.Timestamp.combine(day.date(), NYSE_OPEN).tz_localize(NYSE_TZ)
    return opening.tz_convert("UTC")
