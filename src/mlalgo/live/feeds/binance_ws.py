"""Binance kline WebSocket as a live feed: closed candles, reconnects, REST backfill.

Motivation: the live loop is synchronous and must never stall on the network, while a
WebSocket needs a reader that answers pings and notices disconnects. So the socket lives in a
background thread running an asyncio loop, and bars reach ``poll`` through a queue. Only
``k.x == true`` messages become bars. Every disconnect (network error, ``serverShutdown``, the
24-hour limit, silence longer than ``receive_timeout``) reconnects with exponential backoff and
jitter; after each connect the feed fetches over REST whatever closed while it was away, and a
bar that jumps more than one interval is preceded by the missing bars, fetched the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from mlalgo.data.bar import Bar
from mlalgo.data.http import RetryPolicy
from mlalgo.data.intervals import BINANCE, interval_ms
from mlalgo.live.feeds.base import GapTracker, new_stats
from mlalgo.live.feeds.rest import BINANCE_URL, FEED_RETRY, BinanceKlines
from mlalgo.live.feeds.wire import Malformed, kline_event_bar

log = logging.getLogger(__name__)

WS_URL = "wss://stream.binance.com:9443"
_WS_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError, OSError)


class _Reconnect(Exception):
    """The server announced a shutdown; leave the socket and connect again."""


class BinanceWsFeed:
    """Closed klines of ``symbols`` from ``{ws_url}/stream?streams=...`` (or ``/ws/...``).

    ``start_ms`` makes every bar opening at or after it owed: missed ones are fetched over REST
    at ``base_url``. ``backoff``/``max_backoff`` shape the reconnect delays (seconds, doubled
    per failed attempt, jittered). The thread starts on the first ``poll`` (or ``start()``).
    ``history`` fetches over REST in the caller's thread and may raise
    :class:`~mlalgo.data.http.SourceError` once its retries run out.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str,
        *,
        ws_url: str = WS_URL,
        base_url: str = BINANCE_URL,
        start_ms: int | None = None,
        combined: bool = True,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        receive_timeout: float = 60.0,
        retry: RetryPolicy = FEED_RETRY,
        seed: int | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("BinanceWsFeed needs at least one symbol")
        self.interval_ms = interval_ms(interval)
        self.symbols = [s.upper() for s in symbols]
        self.interval, self.ws_url, self.base_url = interval, ws_url.rstrip("/"), base_url
        self.start_ms, self.combined = start_ms, combined
        self.backoff, self.max_backoff, self.receive_timeout = backoff, max_backoff, receive_timeout
        self.retry, self.seed = retry, seed
        self.stats = new_stats()
        self._queue: queue.SimpleQueue[Bar] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._history: BinanceKlines | None = None

    @property
    def url(self) -> str:
        names = "/".join(f"{s.lower()}@kline_{BINANCE[self.interval]}" for s in self.symbols)
        if self.combined:
            return f"{self.ws_url}/stream?streams={names}"
        return f"{self.ws_url}/ws/{names}"

    # -- the Feed interface ----------------------------------------------------------------

    def history(self, symbol: str, end_ms: int, count: int) -> list[Bar]:
        if self._history is None:
            self._history = BinanceKlines(
                self.base_url, interval=self.interval, retry=self.retry, seed=self.seed
            )
        return self._history.history(symbol.upper(), end_ms, count)

    def poll(self, timeout: float) -> list[Bar]:
        self.start()
        try:
            out = [self._queue.get(timeout=max(0.0, timeout))]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self._queue.get_nowait())
        return out

    def start(self) -> None:
        """Connect in a background thread (idempotent)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="binance-ws-feed", daemon=True
        )
        self._thread.start()
        ready.wait()

    def close(self) -> None:
        """Stop the thread and close the sockets; bars already queued can still be polled."""
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._history is not None:
            self._history.close()

    def __enter__(self) -> BinanceWsFeed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread -------------------------------------------------------------

    def _thread_main(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="binance-ws-rest")
        rest = BinanceKlines(
            self.base_url, interval=self.interval, retry=self.retry, seed=self.seed,
            stats=self.stats,
        )  # fmt: skip
        tracker = GapTracker(self.interval_ms, self.stats, rest.closed)
        if self.start_ms is not None:
            tracker.starts_at(self.symbols, self.start_ms)
        self._task = loop.create_task(self._run(tracker, pool))
        ready.set()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            rest.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _run(self, tracker: GapTracker, pool: ThreadPoolExecutor) -> None:
        rng = random.Random(self.seed)
        loop = asyncio.get_running_loop()
        failures = connects = 0
        timeout = aiohttp.ClientWSTimeout(ws_receive=self.receive_timeout, ws_close=10.0)
        async with aiohttp.ClientSession() as session:
            while True:
                received = self.stats["messages"]
                try:
                    async with session.ws_connect(self.url, autoping=True, timeout=timeout) as ws:
                        connects += 1
                        if connects > 1:
                            self.stats["reconnects"] += 1
                        for symbol in self.symbols:  # what closed while we were away
                            self._put(await loop.run_in_executor(pool, tracker.fill, symbol))
                        await self._read(ws, tracker, pool)
                except _Reconnect:
                    log.info("binance ws feed: server shutdown notice")
                except _WS_ERRORS as exc:
                    log.warning("binance ws feed: %s: %s", type(exc).__name__, exc)
                except Exception:  # a bug must not silence the feed: log it and reconnect
                    self.stats["errors"] += 1
                    log.exception("binance ws feed: unexpected error; reconnecting")
                failures = 0 if self.stats["messages"] > received else failures + 1
                base = min(self.max_backoff, self.backoff * 2 ** min(failures, 16))
                wait = base * rng.uniform(0.5, 1.0)
                log.info("binance ws feed: reconnecting in %.2f s", wait)
                await asyncio.sleep(wait)

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, tracker: GapTracker, pool: ThreadPoolExecutor
    ) -> None:
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"websocket error: {ws.exception()}")
            self.stats["messages"] += 1
            bar = self._parse(msg)
            if bar is None:
                continue
            if tracker.jumps(bar):
                self._put(await loop.run_in_executor(pool, tracker.accept, bar))
            else:
                self._put(tracker.accept(bar))

    def _parse(self, msg: aiohttp.WSMessage) -> Bar | None:
        """The closed bar in a frame, or None; junk is counted and logged, never raised."""
        try:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise Malformed(f"unexpected {msg.type.name} frame")
            return self._closed_bar(json.loads(msg.data))
        except (Malformed, ValueError) as exc:
            self.stats["malformed"] += 1
            log.warning("binance ws feed: malformed message (%s): %.120r", exc, msg.data)
            return None

    def _closed_bar(self, payload: Any) -> Bar | None:
        if (
            isinstance(payload, dict)
            and "id" in payload
            and ("result" in payload or "error" in payload)
        ):
            return None  # the answer to a control request
        data = payload.get("data") if isinstance(payload, dict) and "stream" in payload else payload
        if not isinstance(data, dict):
            raise Malformed(f"expected a JSON object, got {type(data).__name__}")
        event = data.get("e")
        if event == "serverShutdown":
            raise _Reconnect
        if event != "kline":
            raise Malformed(f"event {event!r} is not a kline")
        bar = kline_event_bar(data.get("k"), BINANCE[self.interval])
        if bar is None:
            self.stats["in_progress"] += 1
        elif bar.symbol not in self.symbols:
            raise Malformed(f"kline for {bar.symbol}, which was not subscribed")
        return bar

    def _put(self, bars: list[Bar]) -> None:
        for bar in bars:
            self._queue.put(bar)
        self.stats["bars"] += len(bars)
