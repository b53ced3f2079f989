"""The bundled real sample: AAPL, IBM, MSFT (2000-2013) and the S&P 500 index (1999-2018).

See data/README.md for provenance and licences. Stock prices are back-adjusted on load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlalgo.bars import BarError
from mlalgo.data.files import read_bar_file

STOCKS_FILE = "stocks_daily.csv"
INDEX_FILE = "sp500.csv"
INDEX_SYMBOL = "SPX"
SYMBOLS: tuple[str, ...] = ("AAPL", "IBM", "MSFT", INDEX_SYMBOL)


def load_sample(symbols: Sequence[str] = SYMBOLS, root: str | Path = "data/sample") -> pd.DataFrame:
    """Bars for the requested sample symbols, adjusted, in the bar schema."""
    root = Path(root)
    unknown = sorted(set(symbols) - set(SYMBOLS))
    if unknown:
        raise BarError(
            f"{root}: the sample has no {', '.join(unknown)}; it holds {', '.join(SYMBOLS)}"
        )
    parts = []
    stocks = [s for s in symbols if s != INDEX_SYMBOL]
    if stocks:
        frame = read_bar_file(root / STOCKS_FILE)
        parts.append(frame.loc[frame.index.get_level_values("symbol").isin(stocks)])
    if INDEX_SYMBOL in symbols:
        parts.append(read_bar_file(root / INDEX_FILE, symbol=INDEX_SYMBOL))
    return pd.concat(parts).sort_index()
