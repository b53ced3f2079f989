"""Read a bar CSV into :class:`Bar` objects with the ``csv`` module, as the pandas loader would.

:func:`mlalgo.data.files.read_bar_file` is the reference; this mirrors its rules (column names in
any case, ``Date``/``time``, ``Ticker``/``symbol``, back-adjustment by an adjusted-close column,
naive times as UTC) without pandas, so the live process can replay a file. A test pins the two
to the same bars on the bundled sample.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable
from pathlib import Path

from mlalgo.data.bar import Bar
from mlalgo.live.feeds.wire import Malformed, to_ms

TIME_NAMES = ("time", "date", "datetime", "timestamp")
SYMBOL_NAMES = ("symbol", "ticker")
ADJ_NAMES = ("adj close", "adj_close", "adjclose", "adjusted_close")
PRICE_NAMES = ("open", "high", "low", "close", "volume")


def _pick(names: tuple[str, ...], header: dict[str, int]) -> int | None:
    return next((header[n] for n in names if n in header), None)


def read_bars_csv(
    path: str | Path,
    *,
    symbol: str | None = None,
    adjust: bool = True,
    symbols: Collection[str] | None = None,
) -> list[Bar]:
    """Every bar of a CSV file, sorted by (open time, symbol).

    A file without a symbol column holds one symbol: ``symbol`` or the upper-cased file stem.
    ``adjust`` back-adjusts with the adjusted-close column when there is one, as the loader does.
    ``symbols``: keep only these; the other symbols' lines are skipped unread, so a replay of
    a few symbols of a large file starts sooner (a line that is not a bar is still an error
    when its symbol is kept). Raises ``ValueError`` naming the file and line of anything that
    is not a bar.
    """
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".txt"):
        raise ValueError(f"{path}: the replay feed reads .csv files; convert {path.suffix} first")
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        names = next(reader, [])
        header = {n.strip().lower(): i for i, n in enumerate(names)}
        t_col, s_col = _pick(TIME_NAMES, header), _pick(SYMBOL_NAMES, header)
        adj_col = _pick(ADJ_NAMES, header) if adjust else None
        missing = [n for n in PRICE_NAMES if n not in header]
        if t_col is None or missing:
            raise ValueError(
                f"{path}: needs a date/time column and {', '.join(PRICE_NAMES)} (any case); "
                f"missing {missing or ['date']}; found {names}"
            )
        cols = [header[n] for n in PRICE_NAMES]
        fixed = symbol or path.stem.upper()
        if symbols is not None and s_col is None and fixed not in symbols:
            return []
        lines: Iterable[tuple[int, list[str]]] = enumerate(reader, start=2)
        if symbols is not None and s_col is not None:
            keep = frozenset(symbols)
            lines = ((n, row) for n, row in lines if len(row) <= s_col or row[s_col] in keep)
        bars = [
            _row(row, t_col, s_col, cols, adj_col, fixed, f"{path}:{line}")
            for line, row in lines
            if row
        ]
    bars.sort(key=lambda b: (b.open_ms, b.symbol))
    return bars


def _row(row: list[str], t_col: int, s_col: int | None, cols: list[int], adj_col: int | None,
         fixed: str, where: str) -> Bar:  # fmt: skip
    try:
        t = to_ms(row[t_col])
        o, h, lo, c, v = (float(row[i]) for i in cols)
        if adj_col is not None:
            ratio = float(row[adj_col]) / c
            o, h, lo, c, v = o * ratio, h * ratio, lo * ratio, c * ratio, v / ratio
    except (IndexError, ValueError, ZeroDivisionError, Malformed) as exc:
        raise ValueError(f"{where}: not a bar ({exc}): {row}") from None
    if not math.isfinite(o + h + lo + c + v):
        raise ValueError(f"{where}: non-finite values: {row}")
    return Bar(row[s_col] if s_col is not None else fixed, t, o, h, lo, c, v)
