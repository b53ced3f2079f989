"""One entry point for the fetch stage: a table from source name to loader."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from mlalgo.bars import BarError
from mlalgo.config import FetchConfig
from mlalgo.data.files import read_bar_file
from mlalgo.data.sample import load_sample


def _from_sample(cfg: FetchConfig) -> pd.DataFrame:
    return load_sample(cfg.symbols, root=cfg.path)


def _from_file(cfg: FetchConfig) -> pd.DataFrame:
    bars = read_bar_file(cfg.path)
    present = set(bars.index.get_level_values("symbol"))
    missing = sorted(set(cfg.symbols) - present)
    if missing:
        raise BarError(f"{cfg.path}: no bars for {', '.join(missing)}; it holds {sorted(present)}")
    return bars.loc[bars.index.get_level_values("symbol").isin(cfg.symbols)]


SOURCES: dict[str, Callable[[FetchConfig], pd.DataFrame]] = {
    "sample": _from_sample,
    "file": _from_file,
}


def fetch(cfg: FetchConfig) -> pd.DataFrame:
    """Bars for the configured symbols and date range (inclusive), from the configured source."""
    bars = SOURCES[cfg.source](cfg)
    times = bars.index.get_level_values("time")
    keep = pd.Series(True, index=bars.index)
    if cfg.start is not None:
        keep &= times >= pd.Timestamp(cfg.start, tz="UTC")
    if cfg.end is not None:
        keep &= times <= pd.Timestamp(cfg.end, tz="UTC")
    out = bars.loc[keep.to_numpy()]
    if out.empty:
        raise BarError(
            f"{cfg.source} source: no bars for {', '.join(cfg.symbols)} between "
            f"{cfg.start} and {cfg.end}; check stages.fetch.start/end"
        )
    return out
