"""The bar store: ``<root>/<source>/<SYMBOL>/<interval>.parquet``, one file per series.

One file per (source, symbol, interval) keeps a series readable with any Parquet tool, lets an
incremental fetch rewrite only the series it touched, and makes "what do we have" a directory
listing. Times are UTC bar-open stamps; only closed, validated bars are written.

Writes are atomic: new bars are fetched in full first, merged with what is stored, written to a
temporary file beside the target and renamed over it under an exclusive lock. A crash or a
failed fetch leaves the previous file untouched; running the fetch again completes it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from mlalgo.bars import COLUMNS, make_bars, validate
from mlalgo.data.base import PagedSource, Source, empty_bars, utc
from mlalgo.data.intervals import interval_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    symbol: str
    path: Path
    new_rows: int
    total_rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


class BarStore:
    def __init__(self, root: str | Path = "data/bars") -> None:
        self.root = Path(root)

    def path(self, source: str, symbol: str, interval: str) -> Path:
        return self.root / source / symbol.upper() / f"{interval}.parquet"

    def read(
        self,
        source: str,
        symbol: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stored bars in the bar schema (empty frame when nothing is stored)."""
        path = self.path(source, symbol, interval)
        if not path.exists():
            return empty_bars()
        bars = make_bars(pq.read_table(path).to_pandas(), symbol=symbol.upper())
        times = bars.index.get_level_values("time")
        mask = np.ones(len(bars), dtype=bool)
        if start is not None:
            mask &= times >= utc(start)
        if end is not None:
            mask &= times <= utc(end)
        return bars.loc[mask]

    def span(
        self, source: str, symbol: str, interval: str
    ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        path = self.path(source, symbol, interval)
        if not path.exists():
            return None
        times = pq.read_table(path, columns=["time"]).column("time").to_pandas()
        return (utc(times.min()), utc(times.max())) if len(times) else None

    def write(self, source: str, symbol: str, interval: str, bars: pd.DataFrame) -> Path:
        """Merge ``bars`` into the stored series atomically (new values win on equal times)."""
        path = self.path(source, symbol, interval)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            stored = self.read(source, symbol, interval)
            merged = pd.concat([stored, bars]) if len(stored) else bars
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
            table = _to_table(merged).replace_schema_metadata(
                {
                    "mlalgo.source": source,
                    "mlalgo.interval": interval,
                    "mlalgo.symbol": symbol.upper(),
                }
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                pq.write_table(table, tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return path


def _to_table(bars: pd.DataFrame) -> pa.Table:
    """Arrow table of one series: ``time`` (UTC, microseconds) and the five float columns."""
    times = bars.index.get_level_values("time").tz_convert("UTC").as_unit("us")
    columns = {"time": pa.array(times.tz_convert(None).to_numpy(), pa.timestamp("us", tz="UTC"))}
    for col in COLUMNS:
        columns[col] = pa.array(bars[col].to_numpy(dtype=np.float64))
    return pa.table(columns)


def missing_ranges(
    span: tuple[pd.Timestamp, pd.Timestamp] | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    interval: str,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """What a fetch of [start, end] still needs, given what the store already spans."""
    if span is None:
        return [(start, end)] if start <= end else []
    step = pd.Timedelta(milliseconds=interval_ms(interval))
    first, last = span
    out = []
    if start < first:
        out.append((start, min(end, first - step)))
    if end > last:
        out.append((max(start, last + step), end))
    return [(a, b) for a, b in out if a <= b]


def update(
    store: BarStore,
    source: Source,
    symbol: str,
    interval: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    on_error: str = "fail",
    progress: bool | None = None,
) -> FetchResult:
    """Fetch only what the store lacks for [start, end], validate it, and write it atomically."""
    start, end = utc(start), utc(end)
    ranges = missing_ranges(store.span(source.name, symbol, interval), start, end, interval)
    parts = [_fetch_range(source, symbol, interval, a, b, progress) for a, b in ranges]
    new = pd.concat(parts) if parts else pd.DataFrame()
    path = store.path(source.name, symbol, interval)
    if len(new):
        new, _ = validate(new, source=f"{source.name} {symbol} {interval}", on_error=on_error)
        path = store.write(source.name, symbol, interval, new)
    span = store.span(source.name, symbol, interval)
    total = len(store.read(source.name, symbol, interval)) if span else 0
    log.info("%s %s %s: %d new bars, %d stored", source.name, symbol, interval, len(new), total)
    return FetchResult(symbol.upper(), path, len(new), total, *(span or (None, None)))


def _fetch_range(
    source: Source,
    symbol: str,
    interval: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    progress: bool | None,
) -> pd.DataFrame:
    if not isinstance(source, PagedSource):
        return source.fetch(symbol, interval, start, end)
    expected = max(1, int((end - start) / pd.Timedelta(milliseconds=interval_ms(interval))) + 1)
    frames = []
    with tqdm(
        total=expected,
        desc=f"{source.name} {symbol} {interval}",
        unit="bar",
        disable=None if progress is None else not progress,
        leave=False,
    ) as bar:
        for page in source.pages(symbol, interval, start, end):
            frames.append(page)
            bar.update(len(page))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames)
    return out[~out.index.duplicated(keep="last")].sort_index()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer per series at a time, across processes."""
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
