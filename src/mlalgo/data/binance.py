"""Binance spot klines over REST (``GET /api/v3/klines``), public, no key.

Rows are 12-element arrays with prices as strings; at most 1000 per request, so a range is
walked by ``startTime``. The last row can be the candle still in progress; it is dropped by
comparing its close time with the server's clock, so only closed bars are ever stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd

from mlalgo.data.base import concat_pages, empty_bars, to_ms, utc
from mlalgo.data.http import HttpClient, RetryPolicy, SourceError
from mlalgo.data.intervals import BINANCE, interval_ms

log = logging.getLogger(__name__)

BASE_URL = "https://api.binance.com"
MAX_LIMIT = 1000


class BinanceREST:
    """Closed klines of one symbol between two open times, page by page."""

    name = "binance"

    def __init__(
        self,
        base_url: str = BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        limit: int = MAX_LIMIT,
        seed: int | None = None,
    ) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"binance: limit must be 1..{MAX_LIMIT}, got {limit}")
        self.base_url = base_url
        self.limit = limit
        self.http = HttpClient(base_url, name="binance", retry=retry, seed=seed)

    def server_time(self) -> pd.Timestamp:
        body = self.http.get_json("/api/v3/time")
        return pd.Timestamp(int(body["serverTime"]), unit="ms", tz="UTC")

    def pages(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Iterator[pd.DataFrame]:
        step = interval_ms(interval)
        symbol = symbol.upper()
        now_ms = to_ms(self.server_time())
        cursor, end_ms = to_ms(utc(start)), to_ms(utc(end))
        while cursor <= end_ms:
            params = {
                "symbol": symbol,
                "interval": BINANCE[interval],
                "startTime": cursor,
                "endTime": end_ms,
                "limit": self.limit,
            }
            rows = self.http.get_json("/api/v3/klines", params)
            log.debug(
                "binance %s: %d rows from %d (weight %s)",
                symbol,
                len(rows),
                cursor,
                self.http.last_headers.get("X-MBX-USED-WEIGHT-1M"),
            )
            page = parse_klines(rows, symbol, step, now_ms)
            if len(page):
                yield page
            if len(rows) < self.limit:
                return
            last_open = int(rows[-1][0])
            if last_open < cursor:
                raise SourceError(f"binance: {symbol} klines went backwards at {last_open}")
            cursor = last_open + step

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        return concat_pages(self.pages(symbol, interval, start, end), symbol)


def parse_klines(rows: object, symbol: str, step_ms: int, now_ms: int) -> pd.DataFrame:
    """Kline rows to bars, dropping a candle whose close time has not passed yet."""
    if not isinstance(rows, list):
        raise SourceError(
            f"binance: expected a list of klines for {symbol}, got {type(rows).__name__}"
        )
    closed = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 12:
            raise SourceError(f"binance: malformed kline for {symbol}: {str(row)[:80]}")
        open_ms, close_ms = int(row[0]), int(row[6])
        if close_ms != open_ms + step_ms - 1:
            raise SourceError(
                f"binance: {symbol} kline at {open_ms} closes at {close_ms}; expected the "
                f"interval of {step_ms} ms"
            )
        if close_ms < now_ms:
            closed.append(row)
    if not closed:
        return empty_bars()
    arr = np.array([[float(r[i]) for i in range(1, 6)] for r in closed], dtype=np.float64)
    times = pd.to_datetime([int(r[0]) for r in closed], unit="ms", utc=True)
    index = pd.MultiIndex.from_arrays([[symbol] * len(closed), times], names=["symbol", "time"])
    return pd.DataFrame(arr, index=index, columns=["open", "high", "low", "close", "volume"])
