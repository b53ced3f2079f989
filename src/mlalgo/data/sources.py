"""The fetch stage's source table: config in, Source objects and bars out.

Local sources (the bundled sample, a file) are read directly. Network sources go through the
bar store, so a pipeline that runs every night downloads only the new bars.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mlalgo.bars import BarError
from mlalgo.config import FetchConfig
from mlalgo.data.base import Source, utc
from mlalgo.data.files import read_bar_file
from mlalgo.data.sample import load_sample
from mlalgo.data.store import BarStore, update
from mlalgo.secrets import load_credentials


class SampleSource:
    """The bundled real sample (daily)."""

    name = "sample"

    def __init__(self, root: str | Path = "data/sample") -> None:
        self.root = Path(root)

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        if interval != "1d":
            raise BarError(f"{self.root}: the sample holds daily bars only; set interval: 1d")
        return _between(load_sample([symbol], root=self.root), start, end)


class FileSource:
    """A CSV or Parquet file, with optional column renames."""

    name = "file"

    def __init__(self, path: str | Path, columns: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.columns = columns
        self._bars: pd.DataFrame | None = None

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        if self._bars is None:
            self._bars = read_bar_file(self.path, columns=self.columns)
        held = self._bars.index.get_level_values("symbol")
        if symbol not in set(held):
            raise BarError(f"{self.path}: no bars for {symbol}; it holds {sorted(set(held))}")
        return _between(self._bars.loc[held == symbol], start, end)


def _binance(cfg: FetchConfig) -> Source:
    from mlalgo.data.binance import BASE_URL, BinanceREST

    return BinanceREST(cfg.base_url or BASE_URL)


def _alpaca(cfg: FetchConfig) -> Source:
    from mlalgo.data.alpaca import BASE_URL, AlpacaBars

    return AlpacaBars(load_credentials("alpaca", file=cfg.credentials), cfg.base_url or BASE_URL)


def _ccxt(cfg: FetchConfig) -> Source:
    from mlalgo.data.ccxt_source import CcxtSource

    return CcxtSource(cfg.exchange, cfg.base_url)


LOCAL: dict[str, Callable[[FetchConfig], Source]] = {
    "sample": lambda cfg: SampleSource(cfg.path),
    "file": lambda cfg: FileSource(cfg.path, dict(cfg.columns) or None),
}
NETWORK: dict[str, Callable[[FetchConfig], Source]] = {
    "binance": _binance,
    "alpaca": _alpaca,
    "ccxt": _ccxt,
}


def make_source(cfg: FetchConfig) -> Source:
    return {**LOCAL, **NETWORK}[cfg.source](cfg)


def fetch(cfg: FetchConfig, *, progress: bool | None = None) -> pd.DataFrame:
    """Bars for the configured symbols and range (inclusive), through the store when networked."""
    source = make_source(cfg)
    start = utc(cfg.start) if cfg.start is not None else pd.Timestamp.min.tz_localize("UTC")
    end = utc(cfg.end) if cfg.end is not None else pd.Timestamp.now(tz="UTC")
    parts = []
    for symbol in cfg.symbols:
        if cfg.source in NETWORK:
            store = BarStore(cfg.store)
            update(store, source, symbol, cfg.interval, start, end, progress=progress)
            parts.append(store.read(source.name, symbol, cfg.interval, start, end))
        else:
            parts.append(source.fetch(symbol, cfg.interval, start, end))
    out = pd.concat(parts).sort_index()
    if out.empty:
        raise BarError(
            f"{cfg.source} source: no bars for {', '.join(cfg.symbols)} between "
            f"{cfg.start} and {cfg.end}; check stages.fetch.start/end"
        )
    return out


def _between(bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    times = bars.index.get_level_values("time")
    return bars.loc[(times >= start) & (times <= end)]
