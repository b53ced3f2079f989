"""Bars into rows: each bar judged at the edge, then gathered with the other symbols' bars of
its bar time, because one account trades them all and its decisions are taken together.

A row is ready when every symbol has its bar, when its wait (``row_wait``) is over, or at the
end of the feed. Before a row goes without a symbol, the feed's history is asked for that bar:
the wire may have lost it, or sent a broken copy the edge turned away. A gap the edge finds
is backfilled from history before the bar that revealed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlalgo.data.bar import Bar
from mlalgo.live.edge import ACCEPT, DUPLICATE, Edge
from mlalgo.live.events import emit
from mlalgo.live.journal import Journal
from mlalgo.live.stats import Stats


class Rows:
    """The pending rows of one feed's symbols."""

    def __init__(
        self,
        symbols: list[str],
        interval_ms: int,
        feed: Any,
        journal: Journal,
        stats: Stats,
        *,
        row_wait: float,
    ) -> None:
        self.symbols, self.interval_ms, self.feed = symbols, interval_ms, feed
        self.journal, self.stats, self.row_wait = journal, stats, row_wait
        self.edge = Edge(symbols, interval_ms)
        self.pending: dict[int, dict[str, Bar]] = {}  # rows waiting for their other symbols
        self._since: dict[int, float] = {}

    def offer(self, bar: Bar, last_row: int) -> bool:
        """Judge ``bar`` and queue it into its row; whether it was accepted. ``last_row``: the
        last bar time decided, so an older bar is late."""
        verdict = self.edge.check(bar)
        if verdict.action == DUPLICATE:
            self.stats.duplicates += 1
            return False
        if verdict.action != ACCEPT:
            self.reject(bar, verdict.reason)
            return False
        if bar.open_ms <= last_row:
            self.stats.late += 1
            self.reject(bar, "late: its bar time was already processed without it")
            return False
        if verdict.gap is not None and hasattr(self.feed, "history"):
            self._backfill(bar.symbol, *verdict.gap, last_row)
        self.edge.accept(bar)
        self._queue(bar)
        return True

    def reject(self, bar: Bar, reason: str) -> None:
        self.stats.rejected += 1
        emit("bar_rejected", logging.WARNING, symbol=bar.symbol, open_ms=bar.open_ms, reason=reason)
        if not self.journal.processed(bar.symbol, bar.open_ms):
            self.journal.reject_bar(bar, reason)

    def ready(
        self, *, final: bool, stop: Callable[[], bool]
    ) -> Iterator[tuple[int, dict[str, Bar]]]:
        """The ready rows in time order, each completed from history when it lacks a symbol.
        ``stop()`` is asked before each: a stop waits for the current row, not a backlog."""
        now = time.monotonic()
        for open_ms in sorted(self.pending):
            if stop():
                return
            row = self.pending[open_ms]
            complete = len(row) == len(self.symbols)
            waited = now - self._since[open_ms] >= self.row_wait
            if not (complete or final or waited):
                return
            del self.pending[open_ms]
            del self._since[open_ms]
            if not complete:
                self._complete(open_ms, row)
            yield open_ms, row

    def _queue(self, bar: Bar) -> None:
        self.pending.setdefault(bar.open_ms, {})[bar.symbol] = bar
        self._since.setdefault(bar.open_ms, time.monotonic())

    def _backfill(self, symbol: str, start: int, end: int, last_row: int) -> None:
        count = (end - start) // self.interval_ms
        for bar in self.feed.history(symbol, end, count):
            if bar.open_ms >= start and self.edge.check(bar).action == ACCEPT:
                if bar.open_ms <= last_row:
                    continue
                self.stats.backfilled += 1
                self.edge.accept(bar)
                self._queue(bar)

    def _complete(self, open_ms: int, row: dict[str, Bar]) -> None:
        if not hasattr(self.feed, "history"):
            return
        for symbol in self.symbols:
            if symbol in row:
                continue
            try:
                got = self.feed.history(symbol, open_ms + self.interval_ms, 1)
            except Exception as exc:  # the row goes on without it, as it would have anyway
                emit(
                    "row_fetch_failed",
                    logging.WARNING,
                    symbol=symbol,
                    open_ms=open_ms,
                    error=str(exc),
                )
                continue
            for bar in got:
                if bar.open_ms == open_ms and self.edge.check(bar).action == ACCEPT:
                    self.stats.backfilled += 1
                    self.edge.accept(bar)
                    row[symbol] = bar
