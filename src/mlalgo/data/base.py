"""The Source interface every market-data adapter implements.

``fetch`` returns one symbol's bars in the bar schema (see :mod:`mlalgo.bars`) with open time in
``[start, end]``, only closed bars, stamped with their open time in UTC. Network sources also
offer ``pages`` (the same bars, a page at a time, so the store can show progress), and streaming
sources offer ``stream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from mlalgo.data.bar import Bar


@runtime_checkable
class Source(Protocol):
    name: str

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame: ...


@runtime_checkable
class PagedSource(Source, Protocol):
    def pages(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Iterator[pd.DataFrame]: ...


@runtime_checkable
class StreamSource(Source, Protocol):
    """Closed bars as they happen, as plain :class:`~mlalgo.data.bar.Bar` (no pandas needed)."""

    def stream(self, symbols: Sequence[str], interval: str) -> AsyncIterator[Bar]: ...


def utc(value: object) -> pd.Timestamp:
    """A UTC timestamp from a date, a string or a timestamp (naive values are taken as UTC)."""
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_ms(ts: pd.Timestamp) -> int:
    """Epoch milliseconds, independent of the timestamp's unit (pandas 3 defaults to us)."""
    return int(ts.value // 1_000_000)


def concat_pages(pages: Iterator[pd.DataFrame], symbol: str) -> pd.DataFrame:
    """All pages as one frame; an empty frame in the bar schema when there are none."""
    frames = [p for p in pages if len(p)]
    if not frames:
        return empty_bars()
    out = pd.concat(frames)
    return out[~out.index.duplicated(keep="last")].sort_index()


def empty_bars() -> pd.DataFrame:
    from mlalgo.bars import COLUMNS, INDEX

    index = pd.MultiIndex.from_arrays(
        [pd.Index([], dtype=str), pd.DatetimeIndex([], tz="UTC")], names=list(INDEX)
    )
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in COLUMNS}, index=index)
