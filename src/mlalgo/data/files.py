"""Bars from CSV or Parquet files, with any column case and optional back-adjustment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlalgo.bars import COLUMNS, BarError, make_bars

_TIME_NAMES = ("time", "date", "datetime", "timestamp")
_SYMBOL_NAMES = ("symbol", "ticker")
_ADJ_NAMES = ("adj close", "adj_close", "adjclose", "adjusted_close")


def read_bar_file(
    path: str | Path, *, symbol: str | None = None, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Read a bar file into the bar schema.

    Column names are matched case-insensitively (``Date``/``time``, ``Ticker``/``symbol``,
    ``Open`` ...); ``columns`` maps mlalgo's names to other ones (``{"close": "Last"}``). A file
    without a symbol column is one symbol, named by ``symbol`` or the file stem. When an
    adjusted-close column is present the bars are back-adjusted with it.
    """
    path = Path(path)
    frame = _read_table(path)
    if columns:
        unknown = sorted(set(columns) - {"time", "symbol", "adj close", *COLUMNS})
        absent = sorted(v for v in columns.values() if v not in frame.columns)
        if unknown or absent:
            raise BarError(
                f"{path}: column mapping {dict(columns)} names "
                + (f"unknown targets {unknown}" if unknown else f"columns {absent} the file lacks")
                + f"; file columns are {list(frame.columns)}"
            )
        frame = frame.rename(columns={v: k for k, v in columns.items()})
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_col = next((c for c in _TIME_NAMES if c in frame.columns), None)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if time_col is None or missing:
        raise BarError(
            f"{path}: needs a date/time column and {', '.join(COLUMNS)} (any case); "
            f"missing {missing or [time_col or 'date']}; found {list(frame.columns)}"
        )
    frame = frame.rename(columns={time_col: "time"})
    sym_col = next((c for c in _SYMBOL_NAMES if c in frame.columns), None)
    if sym_col is not None:
        frame = frame.rename(columns={sym_col: "symbol"})
        frame["symbol"] = frame["symbol"].astype(str)
    adj_col = next((c for c in _ADJ_NAMES if c in frame.columns), None)
    if adj_col is not None:
        frame = back_adjust(frame, adj_col)
    if sym_col is None:
        return make_bars(
            frame, symbol=symbol or _stored_symbol(path) or path.stem.upper(), source=str(path)
        )
    return make_bars(frame, source=str(path))


def back_adjust(frame: pd.DataFrame, adj_col: str) -> pd.DataFrame:
    """Scale prices by ``adj / close`` and volume by its inverse, so splits leave no jumps.

    Raw split days look like -50 % crashes; features and returns computed on them would be
    garbage. Scaling volume inversely keeps traded value (price x volume) unchanged.
    """
    ratio = frame[adj_col].to_numpy(dtype=np.float64) / frame["close"].to_numpy(dtype=np.float64)
    out = frame.drop(columns=[adj_col])
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].to_numpy(dtype=np.float64) * ratio
    out["volume"] = out["volume"].to_numpy(dtype=np.float64) / ratio
    return out


def _stored_symbol(path: Path) -> str | None:
    """The symbol a bar-store file records in its metadata (its name is only the interval)."""
    if path.suffix.lower() != ".parquet":
        return None
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(b"mlalgo.symbol")
    return value.decode() if value else None


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise BarError(f"{path}: no such file")
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise BarError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
