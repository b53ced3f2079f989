"""Any ccxt exchange as a bar source (``fetch_ohlcv``); install with ``pip install 'mlalgo[ccxt]'``.

Symbols are the exchange's market ids (``BTCUSDT``) or ccxt's unified names (``BTC/USDT``); bars
are stored under the market id, so the same series fetched over REST or through ccxt lands in a
comparable file. ``base_url`` rewrites every API URL of the exchange to another origin (the
replay exchange, a testnet). ccxt raises ``OperationFailed`` for network trouble and malformed
responses (made strict here: ccxt alone reads a truncated body as an empty page), which are
retried with backoff; ``ExchangeError`` means the request itself is wrong.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from mlalgo.data.base import concat_pages, empty_bars, to_ms, utc
from mlalgo.data.http import RetryPolicy, SourceError
from mlalgo.data.intervals import CCXT, interval_ms

log = logging.getLogger(__name__)


def _ccxt() -> Any:
    try:
        import ccxt
    except ImportError:
        raise SourceError("the ccxt source needs ccxt: pip install 'mlalgo[ccxt]'") from None
    return ccxt


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every http(s) URL in ccxt's (nested) ``urls['api']`` moved to ``base_url``'s origin."""
    origin = base_url.rstrip("/")
    if isinstance(urls, str):
        parts = urlsplit(urls)
        if parts.scheme in ("http", "https") and parts.netloc:
            return origin + urls[len(f"{parts.scheme}://{parts.netloc}") :]
        return urls
    if isinstance(urls, dict):
        return {k: rewrite_urls(v, base_url) for k, v in urls.items()}
    return urls


def _strict_json(exchange: Any, ccxt: Any) -> None:
    """Make an unparseable body an error: ccxt returns None for it, which reads as "no bars"
    and would end a paged fetch early without a word (a truncated response does exactly that)."""
    parse = exchange.parse_json

    def strict(http_response: str) -> Any:
        value = parse(http_response)
        if value is None and isinstance(http_response, str) and http_response.strip():
            raise ccxt.BadResponse(f"{exchange.id}: response is not valid JSON")
        return value

    exchange.parse_json = strict


class CcxtSource:
    """Closed OHLCV bars from a ccxt exchange, paged by ``since``."""

    def __init__(
        self,
        exchange: str = "binance",
        base_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        limit: int = 1000,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        ccxt = _ccxt()
        if not hasattr(ccxt, exchange):
            raise SourceError(f"ccxt has no exchange {exchange!r}; see ccxt.exchanges")
        options: dict[str, Any] = {"enableRateLimit": base_url is None}
        if exchange == "binance":
            options["options"] = {
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
                "adjustForTimeDifference": False,
            }
        self.retry = retry or RetryPolicy()
        options["timeout"] = int(self.retry.timeout * 1000)  # ccxt counts milliseconds
        self.exchange = getattr(ccxt, exchange)(options)
        _strict_json(self.exchange, ccxt)
        if base_url:
            self.exchange.urls["api"] = rewrite_urls(self.exchange.urls["api"], base_url)
        self.name = f"ccxt-{exchange}"
        self.limit = limit
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._ccxt = ccxt

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        for attempt in range(self.retry.max_retries + 1):
            try:
                return fn(*args)
            except self._ccxt.OperationFailed as exc:
                last = f"{type(exc).__name__}"
                if attempt == self.retry.max_retries:
                    break
                wait = self.retry.delay(attempt, self._rng)
                log.info(
                    "%s: %s failed (%s); retry %d in %.2f s",
                    self.name,
                    what,
                    last,
                    attempt + 1,
                    wait,
                )
                self._sleep(wait)
            except self._ccxt.BaseError as exc:
                raise SourceError(f"{self.name}: {what}: {exc}") from None
        raise SourceError(
            f"{self.name}: {what} failed {self.retry.max_retries + 1} times (last: {last})"
        )

    def market(self, symbol: str) -> dict[str, Any]:
        markets = self._call("load_markets", self.exchange.load_markets)
        if symbol in markets:
            return markets[symbol]
        found = self.exchange.markets_by_id.get(symbol.upper())
        if found:
            return found[0]
        raise SourceError(f"{self.name}: unknown symbol {symbol}; try a market id or BASE/QUOTE")

    def pages(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Iterator[pd.DataFrame]:
        market = self.market(symbol)
        step = interval_ms(interval)
        now = (
            self._call("fetch_time", self.exchange.fetch_time)
            if self.exchange.has.get("fetchTime")
            else self.exchange.milliseconds()
        )
        since, end_ms = to_ms(utc(start)), to_ms(utc(end))
        while since <= end_ms:
            rows = self._call(
                "fetch_ohlcv",
                self.exchange.fetch_ohlcv,
                market["symbol"],
                CCXT[interval],
                since,
                self.limit,
            )
            closed = [r for r in rows if r[0] <= end_ms and r[0] + step <= now]
            if closed:
                yield _frame(closed, market["id"])
            if len(rows) < self.limit:
                return
            since = int(rows[-1][0]) + step

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        return concat_pages(self.pages(symbol, interval, start, end), symbol)


def _frame(rows: list[list[float]], symbol: str) -> pd.DataFrame:
    if not rows:
        return empty_bars()
    times = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True)
    index = pd.MultiIndex.from_arrays([[symbol] * len(rows), times], names=["symbol", "time"])
    data = [[float(v) for v in r[1:6]] for r in rows]
    return pd.DataFrame(data, index=index, columns=["open", "high", "low", "close", "volume"])
