"""The feed interface the live executor consumes, and the gap bookkeeping feeds share.

Motivation: the executor should not care whether bars come from a file, a WebSocket or a REST
poller. Every feed hands over closed :class:`~mlalgo.data.bar.Bar` objects through ``poll`` and
serves older bars through ``history`` (warm-up, gap backfill). A feed passes on what the wire
delivered minus what cannot be parsed; dedupe, ordering and validation happen once, at the
executor's edge, so they cannot diverge between feeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from mlalgo.data.bar import Bar
from mlalgo.data.errors import SourceError

log = logging.getLogger(__name__)

STAT_NAMES: tuple[str, ...] = (
    "messages",  # frames or responses received
    "bars",  # bars handed to poll
    "malformed",  # messages that could not be parsed into a closed bar
    "in_progress",  # kline updates of a bar not yet closed (skipped, not malformed)
    "duplicates",  # a bar with the same open time as the last one of its symbol
    "out_of_order",  # a bar older than the last one of its symbol
    "backfilled",  # bars fetched over REST to fill a gap
    "reconnects",  # connections opened after the first
    "errors",  # requests that failed after their retries
)


def new_stats() -> dict[str, int]:
    return dict.fromkeys(STAT_NAMES, 0)


@runtime_checkable
class Feed(Protocol):
    """Closed bars for the live executor.

    ``history(symbol, end_ms, count)``: closed bars with ``open_ms < end_ms``, oldest first, at
    most ``count``. ``poll(timeout)``: closed bars that arrived, in arrival order; ``[]`` after
    ``timeout`` seconds without any; never raises for bad input on the wire.
    """

    interval_ms: int
    stats: dict[str, int]

    def history(self, symbol: str, end_ms: int, count: int) -> list[Bar]: ...

    def poll(self, timeout: float) -> list[Bar]: ...

    def close(self) -> None: ...


# (symbol, first_open_ms, last_open_ms or None for "up to now") -> closed bars, oldest first
Fetch = Callable[[str, int, int | None], list[Bar]]


class GapTracker:
    """The last open time emitted per symbol; fills a jump of more than one interval first.

    Duplicates and older bars are counted and passed on (the executor's edge decides); only
    a forward jump is acted on, because only the feed can still fetch what the wire lost.
    ``fetch`` failures (:class:`SourceError`) are counted and logged, never raised: the bar in
    hand is still delivered and the executor's edge check sees the gap.
    """

    def __init__(self, step: int, stats: dict[str, int], fetch: Fetch) -> None:
        self.step, self.stats, self.fetch = step, stats, fetch
        self.last: dict[str, int] = {}

    def starts_at(self, symbols: list[str], start_ms: int) -> None:
        """Treat every bar of ``symbols`` from ``start_ms`` on as owed (fetched if missed)."""
        for symbol in symbols:
            self.last.setdefault(symbol, start_ms - self.step)

    def jumps(self, bar: Bar) -> bool:
        """Whether accepting ``bar`` needs a fetch first."""
        last = self.last.get(bar.symbol)
        return last is not None and bar.open_ms > last + self.step

    def accept(self, bar: Bar) -> list[Bar]:
        """``bar``, preceded by any bars missing between it and the last one of its symbol."""
        last = self.last.get(bar.symbol)
        if last is not None and bar.open_ms == last:
            self.stats["duplicates"] += 1
            return [bar]
        if last is not None and bar.open_ms < last:
            self.stats["out_of_order"] += 1
            return [bar]
        out = self.fill(bar.symbol, bar.open_ms - self.step) if self.jumps(bar) else []
        self.last[bar.symbol] = bar.open_ms
        return [*out, bar]

    def fill(self, symbol: str, until_ms: int | None = None) -> list[Bar]:
        """Fetched bars after the last one of ``symbol`` up to ``until_ms`` (None: now)."""
        last = self.last.get(symbol)
        if last is None or (until_ms is not None and until_ms < last + self.step):
            return []
        try:
            fetched = self.fetch(symbol, last + self.step, until_ms)
        except SourceError as exc:  # the gap stays; the executor's edge check will see it
            self.stats["errors"] += 1
            log.warning("feed: could not backfill %s after %d: %s", symbol, last, exc)
            return []
        top = until_ms if until_ms is not None else 2**63
        got = [b for b in fetched if last < b.open_ms <= top]
        if got:
            self.last[symbol] = max(last, got[-1].open_ms)
            self.stats["backfilled"] += len(got)
            log.info("feed: backfilled %d %s bars over REST", len(got), symbol)
        return got
