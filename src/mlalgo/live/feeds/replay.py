"""Replay a bar file as a live feed: every timestamp's bars together, in time order.

Motivation: paper trading and the backtest = live check (invariant 4) need the live executor to
see exactly the bars research saw, through the same interface a network feed has. ``history``
serves only what the replay has already revealed (and the bars before its start), so the
executor can never peek ahead.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from itertools import groupby, pairwise
from pathlib import Path

from mlalgo.data.bar import Bar
from mlalgo.data.intervals import INTERVAL_MS, interval_ms
from mlalgo.live.feeds.bar_csv import read_bars_csv
from mlalgo.live.feeds.base import new_stats


class ReplayFeed:
    """Bars of ``symbols`` from a CSV file with ``start_ms <= open_ms < end_ms``.

    ``poll`` returns one timestamp's bars (all symbols) per call, immediately, or ``pace``
    seconds after the previous timestamp. ``symbols=None`` replays every symbol in the file;
    ``symbol`` names the bars of a file without a symbol column. ``interval`` defaults to the
    median spacing of the file's times. ``adjust`` back-adjusts as the sample loader does.
    """

    def __init__(
        self,
        path: str | Path,
        symbols: Sequence[str] | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        interval: str | None = None,
        pace: float = 0.0,
        adjust: bool = True,
        symbol: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if pace < 0:
            raise ValueError(f"pace must be >= 0 seconds, got {pace}")
        self.path, self.symbols, self.pace = Path(path), symbols, pace
        self.start_ms, self.end_ms, self.interval = start_ms, end_ms, interval
        self.adjust, self.symbol = adjust, symbol
        self.stats = new_stats()
        self._clock, self._sleep = clock, sleep
        self._groups: list[list[Bar]] | None = None
        self._by_symbol: dict[str, list[Bar]] = {}
        self._next = 0
        self._due = 0.0
        self._step: int | None = interval_ms(interval) if interval else None

    @property
    def interval_ms(self) -> int:
        if self._step is None:
            self._load()
            assert self._step is not None
        return self._step

    @property
    def exhausted(self) -> bool:
        """True once every bar of the replay window has been delivered."""
        return self._next >= len(self._load())

    def _load(self) -> list[list[Bar]]:
        if self._groups is not None:
            return self._groups
        bars = read_bars_csv(self.path, symbol=self.symbol, adjust=self.adjust)
        if self.symbols is not None:
            present = {b.symbol for b in bars}
            unknown = sorted(set(self.symbols) - present)
            if unknown:
                raise ValueError(
                    f"{self.path}: no bars for {', '.join(unknown)}; "
                    f"it holds {', '.join(sorted(present))}"
                )
            wanted = set(self.symbols)
            bars = [b for b in bars if b.symbol in wanted]
        for bar in bars:  # sorted by time, so each symbol's list is too
            self._by_symbol.setdefault(bar.symbol, []).append(bar)
        if self._step is None:
            self._step = _infer_step(self._by_symbol, self.path)
        lo = self.start_ms if self.start_ms is not None else -(2**63)
        hi = self.end_ms if self.end_ms is not None else 2**63
        window = [b for b in bars if lo <= b.open_ms < hi]
        self._groups = [list(g) for _, g in groupby(window, key=lambda b: b.open_ms)]
        return self._groups

    def _revealed_until(self) -> int:
        """Open times below this have been revealed (or precede the replay)."""
        groups = self._load()
        if self._next < len(groups):
            return groups[self._next][0].open_ms
        return self.end_ms if self.end_ms is not None else 2**63

    def history(self, symbol: str, end_ms: int, count: int) -> list[Bar]:
        """Up to ``count`` bars of ``symbol`` before ``end_ms`` that the replay has revealed."""
        self._load()
        bars = self._by_symbol.get(symbol, [])
        limit = min(end_ms, self._revealed_until())
        hi = bisect.bisect_left(bars, limit, key=lambda b: b.open_ms)
        return bars[max(0, hi - count) : hi] if count > 0 else []

    def poll(self, timeout: float) -> list[Bar]:
        groups = self._load()
        wait = max(0.0, self._due - self._clock()) if self._next < len(groups) else timeout
        if wait > timeout:
            self._sleep(timeout)
            return []
        if wait > 0:
            self._sleep(wait)
        if self._next >= len(groups):
            return []
        group = groups[self._next]
        self._next += 1
        self._due = self._clock() + self.pace
        self.stats["messages"] += 1
        self.stats["bars"] += len(group)
        return list(group)

    def close(self) -> None:
        """Stop the replay: later polls return nothing."""
        if self._groups is None:
            self._groups = []
        self._next = len(self._groups)


def _infer_step(by_symbol: dict[str, list[Bar]], path: Path) -> int:
    gaps = sorted(b.open_ms - a.open_ms for bars in by_symbol.values() for a, b in pairwise(bars))
    median = gaps[len(gaps) // 2] if gaps else 0
    if median not in INTERVAL_MS.values():
        raise ValueError(
            f"{path}: bars are {median} ms apart (median), not one of "
            f"{', '.join(INTERVAL_MS)}; pass interval="
        )
    return median
