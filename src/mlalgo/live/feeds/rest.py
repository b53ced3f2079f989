"""Pandas-free REST bar clients: Binance ``/api/v3/klines`` and Alpaca ``/v2/stocks/{s}/bars``.

The data adapters in :mod:`mlalgo.data` build DataFrames; the live process may not import
pandas, so feeds use these instead. Both return closed bars only, oldest first, and retry
429/418 (honouring Retry-After), 5xx, timeouts and truncated bodies through
:class:`~mlalgo.data.http.HttpClient`; when retries run out they raise
:class:`~mlalgo.data.http.SourceError` and the calling feed decides what that means.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from mlalgo.data.bar import Bar
from mlalgo.data.http import HttpClient, RetryPolicy, SourceError
from mlalgo.data.intervals import ALPACA, BINANCE, interval_ms
from mlalgo.live.feeds.wire import Malformed, alpaca_bar, kline_row_bar, to_rfc3339
from mlalgo.secrets import Credentials, Secret

log = logging.getLogger(__name__)

BINANCE_URL = "https://api.binance.com"
ALPACA_URL = "https://data.alpaca.markets"
FEED_RETRY = RetryPolicy(max_retries=6, backoff=0.2, max_backoff=10.0, timeout=10.0)
_KLINES_LIMIT = 1000
_ALPACA_LIMIT = 10_000
_MAX_PAGES = 10_000  # a server that never stops paging is a bug, not a market


class RestBars(Protocol):
    """Closed bars over REST, for backfill and polling."""

    def closed(self, symbol: str, start_ms: int, end_ms: int | None = None) -> list[Bar]:
        """Closed bars with ``start_ms <= open_ms <= end_ms`` (None: up to now), oldest first."""
        ...

    def history(self, symbol: str, end_ms: int | None, count: int) -> list[Bar]:
        """The last ``count`` closed bars with ``open_ms < end_ms`` (None: the latest)."""
        ...

    def close(self) -> None: ...


def _parse_rows(
    parse: Any, symbol: str, rows: Any, stats: dict[str, int] | None, where: str
) -> list[Any]:
    """Each row through ``parse``; unreadable rows are counted and skipped, not raised."""
    if not isinstance(rows, list):
        raise SourceError(f"{where}: expected a JSON array, got {type(rows).__name__}")
    out = []
    for row in rows:
        try:
            out.append(parse(symbol, row))
        except Malformed as exc:
            if stats is not None:
                stats["malformed"] += 1
            log.warning("%s: skipped a %s row: %s", where, symbol, exc)
    return out


class BinanceKlines:
    """Closed klines of one interval; the in-progress one is dropped using server time."""

    def __init__(
        self,
        base_url: str = BINANCE_URL,
        *,
        interval: str,
        retry: RetryPolicy = FEED_RETRY,
        seed: int | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        self.step = interval_ms(interval)  # first: it names the bad interval
        self.interval = BINANCE[interval]
        self.http = HttpClient(base_url, name="binance", retry=retry, seed=seed)
        self.stats = stats

    def server_time(self) -> int:
        body = self.http.get_json("/api/v3/time")
        if not isinstance(body, dict) or not isinstance(body.get("serverTime"), int):
            raise SourceError(f"binance: /api/v3/time answered {str(body)[:80]!r}")
        return int(body["serverTime"])

    def _klines(self, symbol: str, **params: int) -> list[tuple[Bar, int]]:
        rows = self.http.get_json(
            "/api/v3/klines", {"symbol": symbol, "interval": self.interval, **params}
        )
        if self.stats is not None:
            self.stats["messages"] += 1
        return _parse_rows(kline_row_bar, symbol, rows, self.stats, "binance /api/v3/klines")

    def closed(self, symbol: str, start_ms: int, end_ms: int | None = None) -> list[Bar]:
        now = self.server_time()  # asked first: a kline closed before it is closed for sure
        out: list[Bar] = []
        cursor = start_ms
        for _ in range(_MAX_PAGES):
            params = {"startTime": cursor, "limit": _KLINES_LIMIT}
            if end_ms is not None:
                params["endTime"] = end_ms
            page = self._klines(symbol, **params)
            out += [b for b, close in page if close < now and b.open_ms >= cursor]
            if len(page) < _KLINES_LIMIT:
                break
            cursor = page[-1][0].open_ms + 1
        return [b for b in out if end_ms is None or b.open_ms <= end_ms]

    def history(self, symbol: str, end_ms: int | None, count: int) -> list[Bar]:
        now = self.server_time()
        out: list[Bar] = []
        before = end_ms - 1 if end_ms is not None else None
        while len(out) < count:
            limit = min(_KLINES_LIMIT, count - len(out) + (before is None))  # + the open one
            params = {"limit": limit} if before is None else {"endTime": before, "limit": limit}
            page = self._klines(symbol, **params)
            top = before if before is not None else 2**63
            bars = [b for b, close in page if close < now and b.open_ms <= top]
            out = bars + out
            if len(page) < limit or not page:
                break
            before = page[0][0].open_ms - 1
        return out[-count:] if count > 0 else []

    def close(self) -> None:
        self.http.close()


class AlpacaBars:
    """Alpaca historical bars, paged by ``next_page_token``.

    Alpaca documents completed bars only, but a bar still open by the local wall clock (a
    session's daily bar, say) is dropped anyway: the executor must never trade on one.
    """

    def __init__(
        self,
        base_url: str = ALPACA_URL,
        *,
        interval: str,
        key: Credentials | tuple[str, str] | None = None,
        retry: RetryPolicy = FEED_RETRY,
        seed: int | None = None,
        stats: dict[str, int] | None = None,
        feed: str | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.step = interval_ms(interval)  # first: it names a bad interval
        self.timeframe = ALPACA[interval]
        self.wall = wall
        headers: dict[str, str | Secret] = {}
        if isinstance(key, Credentials):
            headers = {"APCA-API-KEY-ID": key.key_id, "APCA-API-SECRET-KEY": key.secret}
        elif key is not None:
            headers = {"APCA-API-KEY-ID": Secret(key[0]), "APCA-API-SECRET-KEY": Secret(key[1])}
        self.http = HttpClient(base_url, name="alpaca", headers=headers, retry=retry, seed=seed)
        self.stats, self.feed = stats, feed

    def _pages(self, symbol: str, params: dict[str, Any], count: int | None) -> list[Bar]:
        out: list[Bar] = []
        token = None
        base = {"timeframe": self.timeframe, **({"feed": self.feed} if self.feed else {})}
        for _ in range(_MAX_PAGES):
            query = {**base, **params, **({"page_token": token} if token else {})}
            body = self.http.get_json(f"/v2/stocks/{symbol}/bars", query)
            if self.stats is not None:
                self.stats["messages"] += 1
            if not isinstance(body, dict):
                raise SourceError(f"alpaca: bars answered {str(body)[:80]!r}")
            out += _parse_rows(alpaca_bar, symbol, body.get("bars") or [], self.stats, "alpaca")
            token = body.get("next_page_token")
            if not token or (count is not None and len(out) >= count):
                break
        return out

    def closed(self, symbol: str, start_ms: int, end_ms: int | None = None) -> list[Bar]:
        params: dict[str, Any] = {"start": to_rfc3339(start_ms), "limit": _ALPACA_LIMIT}
        if end_ms is not None:
            params["end"] = to_rfc3339(end_ms)
        bars = self._pages(symbol, params, None)
        last = end_ms if end_ms is not None else 2**63
        return [b for b in bars if start_ms <= b.open_ms <= last and self._closed(b)]

    def _closed(self, bar: Bar) -> bool:
        return bar.open_ms + self.step <= self.wall() * 1000

    def history(self, symbol: str, end_ms: int | None, count: int) -> list[Bar]:
        if count <= 0:
            return []
        params: dict[str, Any] = {"sort": "desc", "limit": min(count + 1, _ALPACA_LIMIT)}
        if end_ms is not None:
            params["end"] = to_rfc3339(end_ms - 1)
        top = end_ms if end_ms is not None else 2**63
        bars = [b for b in self._pages(symbol, params, count + 1) if b.open_ms < top]
        bars = [b for b in bars if self._closed(b)][:count]
        return sorted(bars, key=lambda b: b.open_ms)

    def close(self) -> None:
        self.http.close()


def make_rest(
    provider: str,
    base_url: str | None,
    *,
    interval: str,
    key: Credentials | tuple[str, str] | None = None,
    retry: RetryPolicy = FEED_RETRY,
    seed: int | None = None,
    stats: dict[str, int] | None = None,
) -> RestBars:
    """The REST client of ``provider`` (``binance`` or ``alpaca``)."""
    if provider == "binance":
        return BinanceKlines(base_url or BINANCE_URL, interval=interval, retry=retry, seed=seed,
                             stats=stats)  # fmt: skip
    if provider == "alpaca":
        return AlpacaBars(base_url or ALPACA_URL, interval=interval, key=key, retry=retry,
                          seed=seed, stats=stats)  # fmt: skip
    raise ValueError(f"provider {provider!r} is not supported; use 'binance' or 'alpaca'")
