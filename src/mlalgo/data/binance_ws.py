"""Binance's kline WebSocket stream as a source of closed bars, gap-free across reconnects.

Only messages with ``k.x == true`` (the closed candle) become bars. The stream keeps the last
emitted open time per symbol: a repeat is dropped, an older bar is rejected, and a jump of more
than one interval is filled from REST before the new bar is emitted, so consumers see every bar
once, in order. Any disconnect (a network error, a server ``serverShutdown``, the 24-hour limit)
reconnects with exponential backoff and jitter and backfills what was missed over REST. aiohttp
answers the server's pings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pandas as pd

from mlalgo.data.bar import Bar
from mlalgo.data.base import to_ms
from mlalgo.data.binance import BinanceREST
from mlalgo.data.http import RetryPolicy
from mlalgo.data.intervals import BINANCE, interval_ms

log = logging.getLogger(__name__)

WS_URL = "wss://stream.binance.com:9443"


class BinanceStream:
    """``stream(symbols, interval)`` yields closed :class:`Bar` objects; ``fetch`` uses REST."""

    name = "binance"

    def __init__(
        self,
        ws_url: str = WS_URL,
        rest: BinanceREST | None = None,
        *,
        reconnect: RetryPolicy | None = None,
        seed: int | None = None,
        max_reconnects: int | None = None,
    ) -> None:
        self.ws_url = ws_url.rstrip("/")
        self.rest = rest or BinanceREST()
        self.reconnect = reconnect or RetryPolicy(backoff=0.5, max_backoff=30.0)
        self.max_reconnects = max_reconnects
        self._rng = random.Random(seed)
        self.last_open: dict[str, int] = {}
        self.stats = {
            "connects": 0,
            "duplicates": 0,
            "out_of_order": 0,
            "backfilled": 0,
            "rejected": 0,
        }

    def fetch(
        self, symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        return self.rest.fetch(symbol, interval, start, end)

    async def stream(self, symbols: Sequence[str], interval: str) -> AsyncIterator[Bar]:
        step = interval_ms(interval)
        names = [f"{s.lower()}@kline_{BINANCE[interval]}" for s in symbols]
        url = f"{self.ws_url}/stream?streams={'/'.join(names)}"
        failures = 0
        async with aiohttp.ClientSession() as session:
            while True:
                if self.stats["connects"]:
                    for bar in await self._backfill_all(interval, step):
                        yield bar
                try:
                    async with session.ws_connect(url, autoping=True) as ws:
                        self.stats["connects"] += 1
                        failures = 0
                        async for bar in self._read(ws, interval, step):
                            yield bar
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    log.warning("binance stream: %s", type(exc).__name__)
                failures += 1
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise ConnectionError(
                        f"binance stream: gave up after {failures} failed connects"
                    )
                wait = self.reconnect.delay(min(failures - 1, 16), self._rng)
                log.info("binance stream: reconnecting in %.2f s", wait)
                await asyncio.sleep(wait)

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, interval: str, step: int
    ) -> AsyncIterator[Bar]:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            data = payload.get("data", payload) if isinstance(payload, dict) else None
            if not isinstance(data, dict):
                continue
            if data.get("e") == "serverShutdown":
                log.info("binance stream: server shutdown notice; reconnecting")
                return
            if data.get("e") != "kline" or not data.get("k", {}).get("x"):
                continue
            bar = kline_bar(data["k"])
            for out in await self._accept(bar, interval, step):
                yield out

    async def _accept(self, bar: Bar, interval: str, step: int) -> list[Bar]:
        last = self.last_open.get(bar.symbol)
        if last is not None and bar.open_ms == last:
            self.stats["duplicates"] += 1
            return []
        if last is not None and bar.open_ms < last:
            self.stats["out_of_order"] += 1
            log.warning(
                "binance stream: %s bar at %d is older than %d; rejected",
                bar.symbol,
                bar.open_ms,
                last,
            )
            return []
        out = []
        if last is not None and bar.open_ms > last + step:
            out = await self._backfill(bar.symbol, interval, last + step, bar.open_ms - step)
        return [b for b in (*out, bar) if self._emit(b)]

    def _emit(self, bar: Bar) -> bool:
        problems = bar.problems()
        if problems:
            self.stats["rejected"] += 1
            log.warning(
                "binance stream: %s bar at %d rejected: %s",
                bar.symbol,
                bar.open_ms,
                ", ".join(problems),
            )
            return False
        self.last_open[bar.symbol] = bar.open_ms
        return True

    async def _backfill_all(self, interval: str, step: int) -> list[Bar]:
        out: list[Bar] = []
        for symbol, last in list(self.last_open.items()):
            out += [
                b
                for b in await self._backfill(symbol, interval, last + step, None)
                if self._emit(b)
            ]
        return out

    async def _backfill(
        self, symbol: str, interval: str, start_ms: int, end_ms: int | None
    ) -> list[Bar]:
        """Closed bars from REST in [start, end] (end None: up to now), off the event loop."""
        start = pd.Timestamp(start_ms, unit="ms", tz="UTC")
        end = pd.Timestamp(end_ms, unit="ms", tz="UTC") if end_ms is not None else None

        def run() -> pd.DataFrame:
            stop = end if end is not None else self.rest.server_time()
            return self.rest.fetch(symbol, interval, start, stop)

        frame = await asyncio.to_thread(run)
        bars = [
            Bar(symbol.upper(), to_ms(t), *map(float, row))
            for t, row in zip(
                frame.index.get_level_values("time"),
                frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                strict=True,
            )
        ]
        self.stats["backfilled"] += len(bars)
        if bars:
            log.info("binance stream: backfilled %d %s bars over REST", len(bars), symbol)
        return bars


def kline_bar(k: dict[str, Any]) -> Bar:
    """A closed kline payload (strings for prices) as a Bar."""
    return Bar(
        str(k["s"]).upper(),
        int(k["t"]),
        float(k["o"]),
        float(k["h"]),
        float(k["l"]),
        float(k["c"]),
        float(k["v"]),
    )
