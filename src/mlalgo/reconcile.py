"""Compare two bar frames for the same symbols and range (``mlalgo reconcile A B``).

Two sources for the same market rarely agree exactly, and a backtest is only as good as the one
it used. Reconciling says which bars one source lacks and which values differ beyond a tolerance,
so a switch of provider, a re-download or a store migration is a reviewed change, not a silent one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlalgo.bars import COLUMNS, INDEX, BarError
from mlalgo.quality import stamp

ONLY_IN_A = "only in a"
ONLY_IN_B = "only in b"
VALUE = "value differs"
FRAME_COLUMNS = ("kind", "symbol", "time", "column", "a", "b", "rel_diff")


@dataclass(frozen=True)
class ReconcileReport:
    """Bars missing on either side and values that differ beyond ``atol + rtol * max(|a|, |b|)``.

    ``only_in_a``/``only_in_b`` are (symbol, time) indexes; ``mismatches`` has one row per
    differing value: symbol, time, column, a, b and the relative difference
    ``|a - b| / max(|a|, |b|)`` (inf when exactly one side is NaN).
    """

    names: tuple[str, str]
    rows_compared: int
    only_in_a: pd.MultiIndex
    only_in_b: pd.MultiIndex
    mismatches: pd.DataFrame
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return len(self.only_in_a) == 0 and len(self.only_in_b) == 0 and self.mismatches.empty

    def summary(self, limit: int = 10) -> str:
        """Counts, then the first ``limit`` of each kind of difference."""
        a, b = self.names
        lines = [
            f"{a} vs {b}: {self.rows_compared} bars in both, {len(self.only_in_a)} only in {a}, "
            f"{len(self.only_in_b)} only in {b}, {len(self.mismatches)} values differ "
            f"(rtol {self.rtol:g}, atol {self.atol:g})"
        ]
        for name, missing in ((a, self.only_in_a), (b, self.only_in_b)):
            lines += [f"  only in {name}: {sym} {stamp(t)}" for sym, t in missing[:limit]]
            if len(missing) > limit:
                lines.append(f"  ... and {len(missing) - limit} more only in {name}")
        for row in self.mismatches.head(limit).itertuples(index=False):
            lines.append(
                f"  {row.symbol} {stamp(row.time)} {row.column}: {a} {row.a:.10g}, "
                f"{b} {row.b:.10g} (relative difference {row.rel_diff:.3g})"
            )
        if len(self.mismatches) > limit:
            lines.append(f"  ... and {len(self.mismatches) - limit} more values differ")
        return "\n".join([*lines, "ok" if self.ok else "DIFFERENT"])

    def to_frame(self) -> pd.DataFrame:
        """One row per difference: missing bars (``kind`` only in a/b) and differing values."""
        missing = [
            pd.DataFrame(
                {
                    "kind": kind,
                    "symbol": idx.get_level_values("symbol"),
                    "time": idx.get_level_values("time"),
                }
            )
            for kind, idx in ((ONLY_IN_A, self.only_in_a), (ONLY_IN_B, self.only_in_b))
            if len(idx)
        ]
        values = self.mismatches.assign(kind=VALUE)
        frames = [f for f in [*missing, values] if not f.empty]
        if not frames:
            return pd.DataFrame(columns=list(FRAME_COLUMNS))
        return pd.concat(frames, ignore_index=True).reindex(columns=list(FRAME_COLUMNS))


def reconcile(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
    columns: Sequence[str] = COLUMNS,
    names: tuple[str, str] = ("a", "b"),
) -> ReconcileReport:
    """Compare bars ``a`` and ``b`` (both in the bar schema) bar by bar and column by column.

    Values are equal when ``|a - b| <= atol + rtol * max(|a|, |b|)``, or both are NaN.
    """
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    for name, frame in zip(names, (a, b), strict=True):
        _check(frame, name, columns)
    common = a.index.intersection(b.index).sort_values()
    va = a.loc[:, list(columns)].reindex(common).to_numpy(dtype=np.float64, na_value=np.nan)
    vb = b.loc[:, list(columns)].reindex(common).to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(va - vb)
        scale = np.maximum(np.abs(va), np.abs(vb))
        both_nan = np.isnan(va) & np.isnan(vb)
        differs = ~both_nan & ~(diff <= atol + rtol * scale)
        rel = np.where(scale > 0, diff / scale, np.where(diff > 0, np.inf, 0.0))
    rel = np.where(np.isnan(va) ^ np.isnan(vb), np.inf, rel)
    rows, cols = np.nonzero(differs)
    mismatches = pd.DataFrame(
        {
            "symbol": common.get_level_values("symbol")[rows],
            "time": common.get_level_values("time")[rows],
            "column": np.asarray(columns, dtype=object)[cols],
            "a": va[rows, cols],
            "b": vb[rows, cols],
            "rel_diff": rel[rows, cols],
        }
    )
    return ReconcileReport(
        names=names,
        rows_compared=len(common),
        only_in_a=a.index.difference(b.index).sort_values(),
        only_in_b=b.index.difference(a.index).sort_values(),
        mismatches=mismatches,
        rtol=rtol,
        atol=atol,
    )


def _check(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    """Refuse frames that cannot be aligned bar by bar, naming the side and the fix."""
    if not isinstance(frame, pd.DataFrame) or list(frame.index.names) != list(INDEX):
        raise BarError(f"{name}: bars must be indexed by (symbol, time); use mlalgo.bars.make_bars")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BarError(f"{name}: missing columns {missing} to compare")
    if frame.index.has_duplicates:
        raise BarError(
            f"{name}: repeated (symbol, time) bars cannot be matched one to one; "
            "run mlalgo.bars.validate with on_error: repair (keeps the last) first"
        )
