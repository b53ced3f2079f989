"""Alpaca market-data v2 bars (``GET /v2/stocks/{symbol}/bars``); needs an API key.

Pages are chained with ``next_page_token`` until it is null. Prices arrive as JSON numbers.
``adjustment`` defaults to ``all`` (splits and dividends), matching how mlalgo treats prices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pandas as pd

from mlalgo.data.base import concat_pages, empty_bars, utc
from mlalgo.data.http import HttpClient, RetryPolicy, SourceError
from mlalgo.data.intervals import ALPACA
from mlalgo.secrets import Credentials

BASE_URL = "https://data.alpaca.markets"
Adjustment = Literal["raw", "split", "dividend", "all"]


class AlpacaBars:
    """Completed bars of one symbol between two open times, page by page."""

    name = "alpaca"

    def __init__(
        self,
        credentials: Credentials,
        base_url: str = BASE_URL,
        *,
        adjustment: Adjustment = "all",
        feed: str = "iex",
        limit: int = 10_000,
        retry: RetryPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        if not 1 <= limit <= 10_000:
            raise ValueError(f"alpaca: limit must be 1..10000, got {limit}")
        self.base_url = base_url
        self.adjustment = adjustment
        self.feed = feed
        self.limit = limit
        headers = {"APCA-API-KEY-ID": credentials.key_id, "APCA-API-SECRET-KEY": credentials.secret}
        self.http = HttpClient(base_url, name="alpaca", headers=headers, retry=retry, seed=seed)

    def pages(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Iterator[pd.DataFrame]:
        params: dict[str, object] = {
            "timeframe": ALPACA[interval],
            "start": _rfc3339(utc(start)),
            "end": _rfc3339(utc(end)),
            "limit": self.limit,
            "adjustment": self.adjustment,
            "feed": self.feed,
            "sort": "asc",
        }
        token = None
        while True:
            body = self.http.get_json(
                f"/v2/stocks/{symbol}/bars", {**params, **({"page_token": token} if token else {})}
            )
            if not isinstance(body, dict) or "bars" not in body:
                raise SourceError(f"alpaca: unexpected response for {symbol}: {str(body)[:80]}")
            page = parse_bars(body.get("bars") or [], symbol)
            if len(page):
                yield page
            token = body.get("next_page_token")
            if not token:
                return

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        return concat_pages(self.pages(symbol, interval, start, end), symbol)


def parse_bars(bars: list[dict[str, object]], symbol: str) -> pd.DataFrame:
    if not bars:
        return empty_bars()
    try:
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime([b["t"] for b in bars], utc=True),
                "open": [float(b["o"]) for b in bars],  # type: ignore[arg-type]
                "high": [float(b["h"]) for b in bars],  # type: ignore[arg-type]
                "low": [float(b["l"]) for b in bars],  # type: ignore[arg-type]
                "close": [float(b["c"]) for b in bars],  # type: ignore[arg-type]
                "volume": [float(b["v"]) for b in bars],  # type: ignore[arg-type]
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"alpaca: malformed bar for {symbol}: {exc}") from None
    frame["symbol"] = symbol
    return frame.set_index(["symbol", "time"])


def _rfc3339(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
