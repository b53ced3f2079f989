"""Problems as data, the validation report, and the warnings: bars well-formed but suspicious.

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

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlalgo.calendars import (
    NYSE_CLOSE,
    NYSE_OPEN,
    NYSE_TZ,
    closed_reason,
    missing_sessions,
    sessions,
)
from mlalgo.data.intervals import interval_ms

Severity = Literal["error", "warning"]

NON_FINITE = "missing or non-finite values"
NON_POSITIVE = "non-positive prices"
HIGH_BELOW_LOW = "high < low"
HIGH_BELOW_BODY = "high below open or close"
LOW_ABOVE_BODY = "low above open or close"
NEGATIVE_VOLUME = "negative volume"
DUPLICATE = "duplicate times"
OHLC_KINDS = (HIGH_BELOW_LOW, HIGH_BELOW_BODY, LOW_ABOVE_BODY)
REPAIRS: dict[str, str] = {
    **dict.fromkeys(OHLC_KINDS, "widen high and low to contain open and close"),
    DUPLICATE: "keep the last bar of each time",
}
FIX = "fix the data, or set stages.validate.on_error: drop to skip them"

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


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` found in its input and what the policy did about it.

    ``ok`` means the input had no errors; ``dropped`` and ``repaired`` count rows per kind.
    """

    source: str
    rows_in: int
    rows_out: int
    problems: tuple[Problem, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        """Problems per kind, in order of first appearance."""
        return dict(Counter(p.kind for p in self.problems))

    def summary(self) -> str:
        """A few lines for people: counts per kind, the first of each, and the fix."""
        lines = [
            f"{self.source}: {self.rows_in} bars in, {self.rows_out} out; "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        ]
        for kind, n in self.counts().items():
            first = next(p for p in self.problems if p.kind == kind)
            lines.append(
                f"  {first.severity:<7} {kind}: {n} (first at {first.symbol} "
                f"{stamp(first.time)}: {first.detail}); {fix(kind)}"
            )
        for name, counts in (("dropped", self.dropped), ("repaired", self.repaired)):
            if counts:
                lines.append(f"  {name}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        return "\n".join(lines)

    def to_dict(self, max_problems: int = 1000) -> dict[str, Any]:
        """JSON-able; lists the first ``max_problems`` problems and counts all of them."""
        return {
            "source": self.source,
            "ok": self.ok,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "counts": self.counts(),
            "dropped": dict(self.dropped),
            "repaired": dict(self.repaired),
            "problems": [p.to_dict() for p in self.problems[:max_problems]],
            "problems_not_listed": max(0, len(self.problems) - max_problems),
        }

    def message(self, kinds: list[str]) -> str:
        """One line per kind: ``{source}: 2 rows with high < low (first at BBB ...); fix``."""
        lines = []
        for kind in kinds:
            found = [p for p in self.problems if p.kind == kind]
            n, first = len(found), found[0]
            what = f"{_count(n, 'gap')} in the bars" if kind == GAP else f"{n} rows with {kind}"
            strict = "; or validate without strict" if kind in WARNING_FIXES else ""
            lines.append(
                f"{self.source}: {what} (first at {first.symbol} {stamp(first.time)}); "
                f"{fix(kind)}{strict}"
            )
        return "\n".join(lines)


def format_report(report: ValidationReport, limit: int = 20) -> str:
    """The summary, the first ``limit`` problems and a verdict, for the command line."""
    lines = [report.summary()]
    for p in report.problems[:limit]:
        lines.append(f"  {p.severity:<7} {p.symbol} {stamp(p.time)} {p.kind}: {p.detail}")
    if len(report.problems) > limit:
        lines.append(f"  ... and {len(report.problems) - limit} more")
    verdict = "ok" if report.ok else f"FAILED: {len(report.errors)} errors"
    return "\n".join([*lines, verdict])


def fix(kind: str) -> str:
    """What to do about a kind of problem."""
    if kind in WARNING_FIXES:
        return WARNING_FIXES[kind]
    return FIX + (f", or repair to {REPAIRS[kind]}" if kind in REPAIRS else "")


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
    all_times = pd.DatetimeIndex(bars.index.get_level_values("time"))
    found: list[Problem] = []
    for symbol, block in _symbol_blocks(bars):
        times = all_times[block]
        if calendar == "24/7":
            found += _grid_gaps(symbol, times, step, interval)
        elif interval == "1d":
            found += _session_gaps(symbol, times.normalize(), calendar, daily=True)
        else:
            local = times.tz_convert(NYSE_TZ)
            found += _outside_hours(symbol, times, local)
            days = local.normalize().tz_localize(None).tz_localize("UTC")
            found += _session_gaps(symbol, days, calendar, daily=False)
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
            detail = (
                f"close {c[j]:.6g} -> {c[j + 1]:.6g} ({np.expm1(ret[j]):+.1%}): |log return| "
                f"{abs(ret[j]):.3f} is {abs(ret[j]) / scale[j]:.1f} x the robust scale "
                f"{scale[j]:.3g} of the previous {JUMP_WINDOW} returns (limit {sigma:g})"
            )
            found.append(Problem(JUMP, "warning", symbol, times[j + 1], detail))
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


def _grid_gaps(symbol: str, times: pd.DatetimeIndex, step: int, interval: str) -> list[Problem]:
    delta = np.diff(times.as_unit("ns").asi8)
    found = []
    for j in np.flatnonzero(delta > step):
        missing = int(-(-delta[j] // step)) - 1  # ceil: an off-grid bar still leaves a hole
        detail = (
            f"{_count(missing, f'missing {interval} bar')} between "
            f"{stamp(times[j])} and {stamp(times[j + 1])}"
        )
        first = times[j] + pd.Timedelta(step, unit="ns")
        found.append(Problem(GAP, "warning", symbol, first, detail))
    return found


def _session_gaps(symbol: str, days: pd.DatetimeIndex, calendar: str, daily: bool) -> list[Problem]:
    """Runs of sessions without a bar, and (for daily bars) bars on days that are no session."""
    days = days.unique()
    found = []
    for run in missing_sessions(calendar, days):
        span = f"{run[0]:%Y-%m-%d}" + (f"..{run[-1]:%Y-%m-%d}" if len(run) > 1 else "")
        before, after = days[days.searchsorted(run[0]) - 1], days[days.searchsorted(run[-1])]
        detail = (
            f"{_count(len(run), f'missing {calendar} session')}: {span} "
            f"(previous bar {before:%Y-%m-%d}, next {after:%Y-%m-%d})"
        )
        at = run[0] if daily else _at_open(run[0])
        found.append(Problem(GAP, "warning", symbol, at, detail))
    if daily:
        for day in days[~days.isin(sessions(calendar, days[0], days[-1]))]:
            why = closed_reason(calendar, day.date())
            found.append(
                Problem(OFF_SESSION, "warning", symbol, day, f"{day:%Y-%m-%d} is closed ({why})")
            )
    return found


def _outside_hours(symbol: str, times: pd.DatetimeIndex, local: pd.DatetimeIndex) -> list[Problem]:
    minutes = local.hour * 60 + local.minute
    opens, closes = (t.hour * 60 + t.minute for t in (NYSE_OPEN, NYSE_CLOSE))
    days = local.normalize().tz_localize(None).tz_localize("UTC")
    outside = ~days.isin(sessions("NYSE", days[0], days[-1])) | (minutes < opens)
    hours = f"{NYSE_OPEN:%H:%M}-{NYSE_CLOSE:%H:%M} on sessions"
    return [
        Problem(
            OFF_SESSION,
            "warning",
            symbol,
            times[j],
            f"{local[j]:%Y-%m-%d %H:%M} New York, not {hours}",
        )
        for j in np.flatnonzero(outside | (minutes >= closes))
    ]


def _at_open(day: pd.Timestamp) -> pd.Timestamp:
    """A missing intraday session is stamped at its opening bell, in UTC."""
    return pd.Timestamp.combine(day.date(), NYSE_OPEN).tz_localize(NYSE_TZ).tz_convert("UTC")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
