"""The replay exchange: stored bars served as Binance and Alpaca would serve them, on 127.0.0.1.

It is both a product feature (demos, paper trading and offline development against a "market"
that replays history) and the test double every network data adapter is tested against, so it
speaks the documented wire formats and fails in the documented ways, reproducibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pandas as pd
from aiohttp import web

from mlalgo.bars import COLUMNS, INDEX
from mlalgo.data.exchange.alpaca import AlpacaBars
from mlalgo.data.exchange.alpaca_trading import AlpacaTrading
from mlalgo.data.exchange.binance import BinanceRest, dumps
from mlalgo.data.exchange.binance_signing import SignedGate
from mlalgo.data.exchange.binance_stream import BinanceStreams
from mlalgo.data.exchange.binance_trading import BinanceTrading
from mlalgo.data.exchange.clock import Book, infer_interval, make_clock
from mlalgo.data.exchange.faults import KINDS, REST_KINDS, FaultSpec
from mlalgo.data.exchange.ledger import Ledger
from mlalgo.data.files import read_bar_file
from mlalgo.data.intervals import interval_ms

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_FAULTS = FaultSpec()
STAT_NAMES = ("requests", *KINDS, "rate_limited", "banned", "ws_connections", "ws_messages")
VENUES = ("binance", "alpaca")


class ReplayExchange:
    """Serve ``bars`` over Binance REST/WebSocket and Alpaca REST from a background thread.

    Use it as a context manager: ``with ReplayExchange(bars) as ex: requests.get(ex.url + ...)``.

    Each venue also trades, against its own :class:`Ledger` holding ``cash`` (USDT-like
    ``binance_quote`` on Binance, USD on Alpaca): market orders fill at the replay price with
    ``*_commission_bps`` of the notional charged in cash. ``binance_key``/``alpaca_key`` are
    (key, secret) pairs the signed/trading routes require (None: any key, no signature check);
    ``clock_skew_ms`` puts the Binance server clock that far ahead of the machine's, so a client
    meets -1021; ``hold_orders`` leaves orders open until :meth:`release_orders`. ``faults`` may
    be reassigned while serving, REST and WebSocket alike (it is read on every request and
    final kline; draws keep the first seed).
    """

    def __init__(
        self,
        bars: pd.DataFrame,
        *,
        interval: str | None = None,
        faults: FaultSpec = NO_FAULTS,
        speed: float | None = None,
        start: pd.Timestamp | str | None = None,
        port: int = 0,
        alpaca_key: tuple[str, str] | None = None,
        weight_limit: int = 6000,
        ping_interval: float = 20.0,
        max_connection_seconds: float = 86400.0,
        updates_per_bar: int = 3,
        binance_key: tuple[str, str] | None = None,
        binance_quote: str = "USDT",
        cash: float = 100_000.0,
        binance_commission_bps: float = 10.0,
        alpaca_commission_bps: float = 0.0,
        clock_skew_ms: int = 0,
        hold_orders: bool = False,
    ) -> None:
        if list(bars.index.names) != list(INDEX) or any(c not in bars for c in COLUMNS):
            raise ValueError("bars must be indexed by (symbol, time) with columns "
                             f"{list(COLUMNS)}; build them with mlalgo.bars.make_bars")  # fmt: skip
        if len(bars) == 0:
            raise ValueError("no bars to serve")
        self.bars = bars.sort_index()
        self.interval = interval or infer_interval(self.bars)
        clock = make_clock(self.bars, interval_ms(self.interval), speed, start)
        self._book = Book(self.bars, self.interval, clock)
        self.faults, self.port = faults, port
        self._stats: Counter[str] = Counter(dict.fromkeys(STAT_NAMES, 0))
        self._rng = random.Random(faults.seed)
        self._rest = BinanceRest(self._book, weight_limit=weight_limit,
                                 retry_after=faults.retry_after, stats=self._stats)  # fmt: skip
        self._streams = BinanceStreams(
            self._book, faults, self._stats, ping_interval=ping_interval,
            max_connection_seconds=max_connection_seconds, updates_per_bar=updates_per_bar,
        )  # fmt: skip
        self._alpaca = AlpacaBars(self._book, alpaca_key)
        self._ledgers = {
            "binance": Ledger(self._book, cash=cash, commission_bps=binance_commission_bps,
                              shorting=False, unique_ids="open", hold=hold_orders),
            "alpaca": Ledger(self._book, cash=cash, commission_bps=alpaca_commission_bps,
                             shorting=True, unique_ids="all", hold=hold_orders),
        }  # fmt: skip
        gate = SignedGate(binance_key, replay_ms=self._book.now_ms, skew_ms=clock_skew_ms)
        self._binance_trading = BinanceTrading(self._ledgers["binance"], gate,
                                               quote=binance_quote)  # fmt: skip
        self._alpaca_trading = AlpacaTrading(self._ledgers["alpaca"], alpaca_key)
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kw) -> ReplayExchange:
        """Serve every symbol of a bar file (CSV or Parquet, see :func:`read_bar_file`)."""
        return cls(read_bar_file(path), **kw)

    @property
    def faults(self) -> FaultSpec:
        return self._faults

    @faults.setter
    def faults(self, spec: FaultSpec) -> None:
        self._faults = spec
        if hasattr(self, "_streams"):  # the WebSocket draws from the same spec
            self._streams.faults = spec

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters: requests, each fault kind, ws_connections, ws_messages."""
        return dict(self._stats)

    def now(self) -> pd.Timestamp:
        """The replay clock, shared by REST and WebSocket."""
        return pd.Timestamp(self._book.now_ms(), unit="ms", tz="UTC")

    def served(self, symbol: str) -> pd.DataFrame:
        """The bars of ``symbol`` closed at :meth:`now`: what a complete fetch must equal."""
        if symbol not in self._book.tapes:
            raise KeyError(f"{symbol!r} is not served; symbols: {sorted(self._book.tapes)}")
        n = self._book.closed(symbol, self._book.now_ms())
        return self.bars.xs(symbol, level="symbol").iloc[:n]

    # -- trading -------------------------------------------------------------------------

    def ledger(self, venue: str) -> Ledger:
        """The books of ``venue`` ("binance" or "alpaca"), exact (Decimal) amounts."""
        if venue not in self._ledgers:
            raise KeyError(f"unknown venue {venue!r}; venues: {', '.join(VENUES)}")
        return self._ledgers[venue]

    def client_order_ids(self, venue: str) -> list[str]:
        """Every client order id that reached ``venue``'s matching engine, in arrival order,
        duplicates and rejected orders included (requests refused at authentication are not)."""
        with self.ledger(venue).lock:
            return list(self.ledger(venue).received)

    def positions(self, venue: str) -> dict[str, float]:
        """Signed units held by symbol, zero positions left out."""
        with self.ledger(venue).lock:
            return {s: float(q) for s, q in self.ledger(venue).positions.items() if q != 0}

    def cash(self, venue: str) -> float:
        return float(self.ledger(venue).cash)

    def release_orders(self, venue: str | None = None) -> int:
        """Fill the orders held open (``hold_orders=True``) at the current price; how many."""
        venues = VENUES if venue is None else (venue,)
        return sum(len(self.ledger(v).release()) for v in venues)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> ReplayExchange:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="replay-exchange", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        middlewares = [self._count, self._rest.middleware(), self._fault_middleware()]
        app = web.Application(middlewares=middlewares)
        app.add_routes(self._rest.routes() + self._streams.routes() + self._alpaca.routes())
        app.add_routes(self._binance_trading.routes() + self._alpaca_trading.routes())
        app.on_shutdown.append(self._on_shutdown)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()
        self.port = self._runner.addresses[0][1]
        self._book.clock.start()
        log.info("replay exchange on %s (WebSocket %s): %d symbols of %s bars, clock %s%s, "
                 "faults %s", self.url, self.ws_url, len(self._book.tapes), self.interval,
                 self.now(), "" if self._book.clock.speed is None else
                 f" at x{self._book.clock.speed:g}", self.faults.describe())  # fmt: skip

    async def _on_shutdown(self, app: web.Application) -> None:
        if self._stopping is not None:
            self._stopping.set()
        await self._streams.close_all()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_until_signalled(self) -> None:
        """Run in the current event loop until SIGINT or SIGTERM."""
        await self._start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("replay exchange stopping")
            await self._stop()

    # -- REST faults -----------------------------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/api/", "/v2/")):
            self._stats["requests"] += 1
        return await handler(request)

    def _fault_middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith(("/api/", "/v2/")):
                return await handler(request)
            fault = self.faults.draw(self._rng, REST_KINDS)
            if fault is None:
                return await handler(request)
            self._stats[fault] += 1
            log.debug("fault %s on %s", fault, request.path_qs)
            if fault == "429":
                return self._too_many(request)
            if fault == "5xx":
                return self._server_error(request)
            if fault == "lost":
                await handler(request)
                return self._lost(request)
            if fault == "timeout":
                await self._stall()
                return await handler(request)
            return _truncated(await handler(request))

        return inject

    def _too_many(self, request: web.Request) -> web.Response:
        headers = {"Retry-After": str(self.faults.retry_after)}
        if request.path.startswith("/v2/"):
            return web.json_response({"message": "too many requests."}, status=429,
                                     headers=headers)  # fmt: skip
        body = {"code": -1003, "msg": "Too many requests; please use WebSocket Streams."}
        return web.json_response(body, status=429, headers=headers, dumps=dumps)

    def _server_error(self, request: web.Request) -> web.Response:
        status = self._rng.choice((500, 502, 503))
        if self._rng.random() < 0.5:
            return web.Response(status=status, text=f"{status} Server Error",
                                content_type="text/plain")  # fmt: skip
        if request.path.startswith("/v2/"):
            return web.json_response({"message": "internal server error"}, status=status)
        body = {"code": -1001, "msg": "Internal error; unable to process your request."}
        return web.json_response(body, status=status, dumps=dumps)

    def _lost(self, request: web.Request) -> web.StreamResponse:
        """After processing: drop the connection half the time, else a 5xx."""
        if self._rng.random() < 0.5 and request.transport is not None:
            request.transport.abort()  # aiohttp then drops the response it cannot write
        return self._server_error(request)

    async def _stall(self) -> None:
        """Wait ``timeout_delay`` (cut short when the server stops)."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.faults.timeout_delay)


def _truncated(resp: web.StreamResponse) -> web.StreamResponse:
    """The same 200 response with only the first half of its body."""
    if not isinstance(resp, web.Response) or not isinstance(resp.body, bytes):
        return resp
    return web.Response(status=200, body=resp.body[: len(resp.body) // 2], headers=resp.headers)


def serve(
    path: str | Path,
    *,
    port: int,
    speed: float | None,
    faults: FaultSpec,
    start: pd.Timestamp | str | None = None,
    interval: str | None = None,
) -> None:
    """Serve a bar file until SIGINT/SIGTERM (``mlalgo exchange serve``)."""
    exchange = ReplayExchange.from_file(
        path, port=port, speed=speed, faults=faults, start=start, interval=interval
    )
    asyncio.run(exchange.serve_until_signalled())
