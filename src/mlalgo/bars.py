"""The bar schema and its validation at the edge.

Every source hands back the same shape: a DataFrame indexed by (symbol, time) with float columns
open, high, low, close, volume, times in UTC, sorted. :func:`validate` is the single gate a bar
passes before any feature, model or broker sees it; a bad bar is either refused with a message
that says how to proceed, or dropped and counted, never passed on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX: tuple[str, str] = ("symbol", "time")

log = logging.getLogger(__name__)


class BarError(ValueError):
    """Bars that break the schema; the message names the source, the rows and the fix."""


@dataclass(frozen=True)
class ValidationReport:
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)


def make_bars(frame: pd.DataFrame, symbol: str | None = None) -> pd.DataFrame:
    """Bring a frame with a ``time`` column (and ``symbol`` or a given symbol) into the schema."""
    frame = frame.copy()
    if symbol is not None:
        frame["symbol"] = symbol
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame = frame.set_index(list(INDEX)).sort_index()
    return frame.loc[:, list(COLUMNS)].astype(np.float64)


def validate(
    bars: pd.DataFrame, *, source: str, on_error: Literal["raise", "drop"] = "raise"
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check every bar; raise on the first kind of problem, or drop the offending rows.

    ``source`` names where the bars came from (a file, an API) so the message points there.
    """
    _check_structure(bars, source)
    bad = _row_problems(bars)
    found = {name: mask for name, mask in bad.items() if mask.any()}
    if found and on_error == "raise":
        name, mask = next(iter(found.items()))
        first = bars.index[mask.argmax()]
        raise BarError(
            f"{source}: {int(mask.sum())} rows with {name} (first at {first[0]} "
            f"{first[1]:%Y-%m-%dT%H:%MZ}); fix the data, or set "
            f"stages.validate.on_error: drop to skip them"
        )
    keep = np.ones(len(bars), dtype=bool)
    for mask in found.values():
        keep &= ~mask
    for name, mask in found.items():
        log.warning("%s: dropped %d rows with %s", source, int(mask.sum()), name)
    out = bars.loc[keep]
    return out, ValidationReport(
        rows_in=len(bars), rows_out=len(out), dropped={k: int(v.sum()) for k, v in found.items()}
    )


def _check_structure(bars: pd.DataFrame, source: str) -> None:
    if list(bars.index.names) != list(INDEX):
        raise BarError(
            f"{source}: index must be (symbol, time), got {list(bars.index.names)}; "
            "build bars with mlalgo.bars.make_bars"
        )
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise BarError(f"{source}: missing columns {missing}; bars need {list(COLUMNS)}")
    times = bars.index.get_level_values("time")
    if not isinstance(times, pd.DatetimeIndex) or str(times.tz) != "UTC":
        raise BarError(f"{source}: bar times must be UTC timestamps, got {times.dtype}")
    if len(bars) == 0:
        raise BarError(f"{source}: no bars; check the symbols and the date range")
    if not bars.index.is_monotonic_increasing:
        raise BarError(
            f"{source}: bars are not sorted by (symbol, time); sort them with "
            "bars.sort_index() or build them with mlalgo.bars.make_bars"
        )


def _row_problems(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    o, h, lo, c, v = (bars[col].to_numpy(dtype=np.float64) for col in COLUMNS)
    prices = np.column_stack([o, h, lo, c])
    with np.errstate(invalid="ignore"):
        return {
            "missing or non-finite values": ~np.isfinite(np.column_stack([prices, v])).all(axis=1),
            "non-positive prices": (prices <= 0).any(axis=1),
            "high < low": h < lo,
            "high below open or close": h < np.maximum(o, c),
            "low above open or close": lo > np.minimum(o, c),
            "negative volume": v < 0,
            "duplicate times": bars.index.duplicated(keep="first"),
        }
