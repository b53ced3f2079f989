"""The bar schema and the gate every bar passes before it reaches a feature, a model or a broker.

Bars are a DataFrame indexed by (``symbol``, ``time``) with UTC times, sorted, and float columns
``open, high, low, close, volume``. :func:`validate` is the single entry point (invariant 7):

- structural problems (not a frame, wrong index, missing or non-numeric columns, non-UTC or
  missing times, no rows, unsorted) are always refused: no policy can guess what was meant;
- row errors (non-finite or non-positive values, inconsistent OHLC, negative volume, duplicate
  times) follow ``on_error``: ``"fail"`` refuses them, ``"drop"`` removes the rows,
  ``"repair"`` fixes what the bar itself determines and drops the rest;
- warnings (gaps, jumps, zero volume; see :mod:`mlalgo.quality`) are reported on the bars that
  are returned and never dropped; ``strict=True`` refuses them.

Every finding is a :class:`~mlalgo.quality.Problem` in the :class:`ValidationReport`.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mlalgo.calendars import check_calendar
from mlalgo.data.intervals import interval_ms
from mlalgo.quality import (
    DUPLICATE,
    HIGH_BELOW_BODY,
    HIGH_BELOW_LOW,
    LOW_ABOVE_BODY,
    NEGATIVE_VOLUME,
    NON_FINITE,
    NON_POSITIVE,
    OHLC_KINDS,
    REPAIRS,
    WARNING_FIXES,
    Problem,
    ValidationReport,
    find_warnings,
    format_report,
    stamp,
)

__all__ = [
    "COLUMNS",
    "INDEX",
    "BarError",
    "Problem",
    "ValidationReport",
    "format_report",
    "make_bars",
    "validate",
    "validate_file",
]

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX: tuple[str, str] = ("symbol", "time")
OnError = Literal["fail", "drop", "repair", "raise"]  # "raise": old name of "fail"

log = logging.getLogger(__name__)


class BarError(ValueError):
    """Bars that break the schema; the message names the source, the rows and the fix.

    ``report`` holds every finding when the bars could be inspected row by row.
    """

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def make_bars(
    frame: pd.DataFrame, symbol: str | None = None, *, source: str | None = None
) -> pd.DataFrame:
    """Bring a frame with a ``time`` column (and ``symbol`` or a given symbol) into the schema.

    Unparseable times or numbers raise :class:`BarError` naming the cell, prefixed by ``source``.
    """
    where = f"{source}: " if source else ""
    needed = ["time", *COLUMNS] + ([] if symbol is not None else ["symbol"])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BarError(f"{where}missing columns {missing}; bars need {needed}")
    frame = frame.copy()
    if symbol is not None:
        frame["symbol"] = symbol
    frame["time"] = _to_utc(frame["time"], where)
    for col in COLUMNS:
        frame[col] = _to_float(frame[col], col, where, frame.index)
    frame = frame.set_index(list(INDEX)).sort_index()
    return frame.loc[:, list(COLUMNS)]


def validate(
    bars: pd.DataFrame,
    *,
    source: str,
    on_error: OnError = "fail",
    interval: str | None = None,
    calendar: str = "24/7",
    jump_sigma: float = 8.0,
    strict: bool = False,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check every bar; return the bars to use and a report, or raise :class:`BarError`.

    ``source`` names where the bars came from (a file, an API) so every message points there.
    ``on_error`` is ``"fail"`` (refuse, one line per kind of error), ``"drop"`` (remove the rows;
    of repeated bars the first is kept) or ``"repair"`` (widen high/low over open/close, keep
    the last of repeated bars, drop what is not repairable). ``interval`` (``1m``/``1h``/``1d``)
    and ``calendar`` (``"24/7"``/``"NYSE"``) enable the gap check; without an interval it is
    skipped. Warnings are checked on the returned bars; ``strict=True`` refuses them under every
    policy, since none can fix a gap or a jump. The input is never modified.
    """
    policy = _policy(on_error, source, calendar, interval, jump_sigma)
    _check_structure(bars, source)
    values = {c: _to_float(bars[c], c, f"{source}: ", bars.index) for c in COLUMNS}
    masks = _row_errors(values, bars.index, keep_last=policy == "repair")
    keep, new = _apply(policy, values, masks)
    problems = _describe(bars.index, values, new, masks, keep, policy)
    out = bars.loc[keep]
    for col in COLUMNS:
        if bars[col].dtype != np.float64 or new[col] is not values[col]:
            out[col] = new[col][keep]
    if len(out) and not (policy == "fail" and problems):  # a refusal needs no warnings
        try:
            found = find_warnings(out, interval=interval, calendar=calendar, jump_sigma=jump_sigma)
        except ValueError as exc:  # e.g. NYSE sessions before 1990
            raise BarError(f"{source}: {exc}") from None
        problems += [_promote(p) if strict else p for p in found]
    gone = {k: int((m & ~keep).sum()) for k, m in masks.items()}
    fixed = {k: int((m & keep).sum()) for k, m in masks.items() if k in REPAIRS}
    if policy == "repair":
        fixed[DUPLICATE], gone[DUPLICATE] = gone[DUPLICATE], 0
    report = ValidationReport(
        source=source,
        rows_in=len(bars),
        rows_out=len(out),
        problems=tuple(problems),
        dropped={k: n for k, n in gone.items() if n} if policy != "fail" else {},
        repaired={k: n for k, n in fixed.items() if n} if policy == "repair" else {},
    )
    refused = [
        kind
        for kind in report.counts()
        if (policy == "fail" and kind not in WARNING_FIXES) or (strict and kind in WARNING_FIXES)
    ]
    if refused:
        raise BarError(report.message(refused), report)
    if len(out) == 0:
        raise BarError(
            f"{source}: every one of the {len(bars)} bars has errors, so on_error: {policy} "
            "leaves none; fix the data",
            report,
        )
    _log(report)
    return out, report


def validate_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    interval: str | None = None,
    calendar: str = "24/7",
    jump_sigma: float = 8.0,
    strict: bool = False,
) -> ValidationReport:
    """Read a bar file and report every problem in it (``mlalgo validate PATH``).

    Row errors are collected as with ``on_error: drop``, so the report lists them all, and
    ``report.ok`` is the verdict; unreadable files and structural problems raise
    :class:`BarError`. The other arguments are :func:`validate`'s.
    """
    from mlalgo.data.files import read_bar_file  # mlalgo.data.files imports this module

    try:
        bars = read_bar_file(path, symbol=symbol)
    except BarError as exc:
        raise exc if str(exc).startswith(str(path)) else BarError(f"{path}: {exc}") from None
    try:
        checks = {"interval": interval, "calendar": calendar, "jump_sigma": jump_sigma}
        return validate(bars, source=str(path), on_error="drop", strict=strict, **checks)[1]
    except BarError as exc:
        if exc.report is None:
            raise
        return exc.report


def _policy(
    on_error: str, source: str, calendar: str, interval: str | None, jump_sigma: float
) -> str:
    policy = "fail" if on_error == "raise" else on_error
    if policy not in ("fail", "drop", "repair"):
        raise BarError(f"{source}: on_error must be fail, drop or repair, got {on_error!r}")
    if not (np.isfinite(jump_sigma) and jump_sigma > 0):
        raise BarError(f"{source}: jump_sigma must be a positive number, got {jump_sigma!r}")
    try:
        check_calendar(calendar)
        if interval is not None:
            interval_ms(interval)
    except ValueError as exc:
        raise BarError(f"{source}: {exc}") from None
    return policy


def _check_structure(bars: pd.DataFrame, source: str) -> None:
    if not isinstance(bars, pd.DataFrame):
        raise BarError(f"{source}: bars must be a DataFrame, got {type(bars).__name__}")
    if list(bars.index.names) != list(INDEX):
        raise BarError(
            f"{source}: index must be (symbol, time), got {list(bars.index.names)}; "
            "build bars with mlalgo.bars.make_bars"
        )
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise BarError(f"{source}: missing columns {missing}; bars need {list(COLUMNS)}")
    repeated = [c for c in COLUMNS if int((bars.columns == c).sum()) > 1]
    if repeated:
        raise BarError(f"{source}: columns {repeated} appear more than once; keep one of each")
    times = bars.index.get_level_values("time")
    if not isinstance(times, pd.DatetimeIndex) or str(times.tz) != "UTC":
        raise BarError(
            f"{source}: bar times must be UTC timestamps, got {times.dtype}; "
            "convert with pd.to_datetime(..., utc=True) or tz_convert('UTC')"
        )
    if len(bars) == 0:
        raise BarError(f"{source}: no bars; check the symbols and the date range")
    if times.hasnans:
        row = int(np.flatnonzero(times.isna())[0])
        raise BarError(
            f"{source}: {int(times.isna().sum())} bars have no time (first at row {row}); "
            "fix or remove them in the source"
        )
    symbols = bars.index.get_level_values("symbol")
    if pd.api.types.infer_dtype(symbols, skipna=False) != "string":
        raise BarError(f"{source}: symbols must be strings, got {symbols.unique()[:5].tolist()}")
    if not bars.index.is_monotonic_increasing:
        raise BarError(
            f"{source}: bars are not sorted by (symbol, time); sort them with "
            "bars.sort_index() or build them with mlalgo.bars.make_bars"
        )


def _apply(
    policy: str, values: dict[str, np.ndarray], masks: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows to keep, and the values to keep them with (repair widens high and low)."""
    if policy != "repair":
        return ~np.logical_or.reduce(list(masks.values())), values
    keep = ~(masks[NON_FINITE] | masks[NON_POSITIVE] | masks[NEGATIVE_VOLUME] | masks[DUPLICATE])
    fixed = np.logical_or.reduce([masks[k] for k in OHLC_KINDS]) & keep
    prices = np.column_stack([values[c] for c in ("open", "high", "low", "close")])
    new = dict(values)
    if fixed.any():
        new["high"] = np.where(fixed, prices.max(axis=1), values["high"])
        new["low"] = np.where(fixed, prices.min(axis=1), values["low"])
    return keep, new


def _to_float(col: pd.Series, name: str, where: str, index: pd.Index) -> np.ndarray:
    """The column as float64; a clear error naming the first cell that is not a number."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
        raise BarError(f"{where}column {name} has dtype {dtype}; bars need numbers")
    try:
        return pd.to_numeric(col).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError, OverflowError):
        pass  # find the first cell that is not a number, for the message
    cells = col.to_numpy(dtype=object)
    numbers = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        if pd.isna(cell) if np.ndim(cell) == 0 else False:
            continue
        try:
            numbers[i] = float(cell)
        except (TypeError, ValueError, OverflowError):
            label = index[i] if i < len(index) else i
            at = f" ({label[0]} {stamp(label[1])})" if isinstance(label, tuple) else ""
            raise BarError(
                f"{where}column {name} is not numeric: {str(cell)[:40]!r} at row {i}{at}; "
                "fix the source, or coerce with pd.to_numeric(..., errors='coerce') to make "
                "such cells missing"
            ) from None
    return numbers


def _to_utc(col: pd.Series, where: str) -> pd.Series:
    try:
        return pd.to_datetime(col, utc=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BarError(
            f"{where}column time has values that are not dates ({exc}); "
            "fix the source or parse it with pd.to_datetime(..., format=...)"
        ) from None


def _row_errors(
    v: dict[str, np.ndarray], index: pd.Index, *, keep_last: bool
) -> dict[str, np.ndarray]:
    o, h, lo, c, vol = (v[col] for col in COLUMNS)
    prices = np.column_stack([o, h, lo, c])
    with np.errstate(invalid="ignore"):
        return {
            NON_FINITE: ~np.isfinite(np.column_stack([prices, vol])).all(axis=1),
            NON_POSITIVE: (prices <= 0).any(axis=1),
            HIGH_BELOW_LOW: h < lo,
            HIGH_BELOW_BODY: h < np.maximum(o, c),
            LOW_ABOVE_BODY: lo > np.minimum(o, c),
            NEGATIVE_VOLUME: vol < 0,
            DUPLICATE: index.duplicated(keep="last" if keep_last else "first"),
        }


def _describe(
    index: pd.Index,
    v: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    keep: np.ndarray,
    policy: str,
) -> list[Problem]:
    """One error Problem per row and kind, saying what was wrong and what was done."""
    found = []
    for kind, mask in masks.items():
        for i in np.flatnonzero(mask):
            what = _what(kind, {c: v[c][i] for c in COLUMNS})
            if policy == "repair" and keep[i]:  # in repair only OHLC kinds are kept
                changed = [c for c in ("high", "low") if new[c][i] != v[c][i]]
                what += "; repaired: " + ", ".join(
                    f"{c} {v[c][i]:.6g} -> {new[c][i]:.6g}" for c in changed
                )
            elif policy == "repair" and kind == DUPLICATE:
                what += "; replaced by the last bar at this time"
            elif policy != "fail":
                what += "; dropped" + (" (not repairable)" if policy == "repair" else "")
            found.append(Problem(kind, "error", str(index[i][0]), index[i][1], what))
    return found


def _what(kind: str, row: dict[str, float]) -> str:
    if kind in (NON_FINITE, NON_POSITIVE):
        bad = [c for c, x in row.items() if (not np.isfinite(x) if kind == NON_FINITE else x <= 0)]
        return ", ".join(f"{c} is {row[c]:.6g}" for c in bad)
    o, h, lo, c = (f"{row[k]:.6g}" for k in ("open", "high", "low", "close"))
    return {
        HIGH_BELOW_LOW: f"high {h} < low {lo}",
        HIGH_BELOW_BODY: f"high {h} < max(open {o}, close {c})",
        LOW_ABOVE_BODY: f"low {lo} > min(open {o}, close {c})",
        NEGATIVE_VOLUME: f"volume is {row['volume']:.6g}",
    }.get(kind, "another bar has the same symbol and time")


def _promote(problem: Problem) -> Problem:
    return Problem(problem.kind, "error", problem.symbol, problem.time, problem.detail)


def _log(report: ValidationReport) -> None:
    for name, counts in (("dropped", report.dropped), ("repaired", report.repaired)):
        for kind, n in counts.items():
            log.warning("%s: %s %d rows with %s", report.source, name, n, kind)
    for kind, n in Counter(p.kind for p in report.warnings).items():
        p = next(p for p in report.warnings if p.kind == kind)
        log.warning("%s: %d x %s, first at %s %s", report.source, n, kind, p.symbol, stamp(p.time))
