"""A feed that polls REST for closed bars: Binance klines or Alpaca bars.

Motivation: where no stream is available (Alpaca daily bars, a firewall that blocks
WebSockets), polling every few seconds is the simple, robust way to follow the market. Each
round asks for everything after the last bar it emitted, so nothing is lost between rounds or
while the API was down; the in-progress bar is dropped using the server's clock (Binance) or
because the API serves completed bars only (Alpaca). Retries (429 with Retry-After, 5xx,
timeouts, truncated bodies) happen inside ``poll``, which never raises for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from mlalgo.data.bar import Bar
from mlalgo.data.http import RetryPolicy, SourceError
from mlalgo.data.intervals import interval_ms
from mlalgo.live.feeds.base import new_stats
from mlalgo.live.feeds.rest import FEED_RETRY, RestBars, make_rest
from mlalgo.secrets import Credentials

log = logging.getLogger(__name__)


class RestPollFeed:
    """Poll ``provider`` (``"binance"`` or ``"alpaca"``) every ``poll_every`` seconds.

    ``start_ms`` makes every bar opening at or after it owed; without it the first round
    emits each symbol's latest closed bar and follows on from there. ``key`` is Alpaca's
    key-id/secret pair (a :class:`~mlalgo.secrets.Credentials` or a tuple). ``poll_every``
    defaults to a tenth of the interval, at most 60 s. A poll that runs into retries may take
    longer than its ``timeout``.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str,
        *,
        provider: str = "binance",
        base_url: str | None = None,
        key: Credentials | tuple[str, str] | None = None,
        poll_every: float | None = None,
        start_ms: int | None = None,
        retry: RetryPolicy = FEED_RETRY,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not symbols:
            raise ValueError("RestPollFeed needs at least one symbol")
        if provider not in ("binance", "alpaca"):
            raise ValueError(f"provider {provider!r} is not supported; use 'binance' or 'alpaca'")
        if poll_every is not None and poll_every <= 0:
            raise ValueError(f"poll_every must be > 0 seconds, got {poll_every}")
        self.interval_ms = interval_ms(interval)
        self.symbols = [s.upper() for s in symbols] if provider == "binance" else list(symbols)
        self.interval, self.provider, self.base_url, self.key = interval, provider, base_url, key
        self.poll_every = poll_every or min(60.0, self.interval_ms / 10_000)
        self.start_ms, self.retry, self.seed = start_ms, retry, seed
        self.stats = new_stats()
        self._clock, self._sleep = clock, sleep
        self._rest: RestBars | None = None
        self._due = 0.0
        self.last: dict[str, int] = {}
        if start_ms is not None:
            self.last = {s: start_ms - self.interval_ms for s in self.symbols}

    @property
    def rest(self) -> RestBars:
        if self._rest is None:
            self._rest = make_rest(self.provider, self.base_url, interval=self.interval,
                                   key=self.key, retry=self.retry, seed=self.seed,
                                   stats=self.stats)  # fmt: skip
        return self._rest

    def history(self, symbol: str, end_ms: int, count: int) -> list[Bar]:
        """Closed bars before ``end_ms``; raises :class:`SourceError` once retries run out."""
        return self.rest.history(symbol, end_ms, count)

    def poll(self, timeout: float) -> list[Bar]:
        deadline = self._clock() + max(0.0, timeout)
        while True:
            wait = self._due - self._clock()
            left = deadline - self._clock()
            if wait > left:
                self._sleep(max(0.0, left))
                return []
            if wait > 0:
                self._sleep(wait)
            self._due = self._clock() + self.poll_every
            bars = self._round()
            if bars or self._clock() >= deadline:
                return bars

    def _round(self) -> list[Bar]:
        """Every bar that closed since the last one emitted, per symbol."""
        out: list[Bar] = []
        for symbol in self.symbols:
            last = self.last.get(symbol)
            try:
                if last is None:
                    bars = self.rest.history(symbol, None, 1)
                else:
                    bars = [b for b in self.rest.closed(symbol, last + self.interval_ms)
                            if b.open_ms > last]  # fmt: skip
            except SourceError as exc:
                self.stats["errors"] += 1
                log.warning("rest poll feed: %s: %s; trying again next round", symbol, exc)
                continue
            if bars:
                self.last[symbol] = bars[-1].open_ms
                self.stats["backfilled"] += len(bars) - 1
                out += bars
        self.stats["bars"] += len(out)
        return out

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()
