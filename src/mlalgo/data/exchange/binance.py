"""Binance Spot market data, as the wire shows it: REST klines and the kline WebSocket streams.

Payloads follow the documented format exactly (prices and volumes as strings, ``closeTime =
openTime + interval - 1``, ``k.x`` true only on the final update), so an adapter that works here
works against the real exchange. Decimal strings are ``repr(float)`` so clients get the exact
stored float back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from mlalgo.data.exchange.clock import Book, partial, trades
from mlalgo.data.exchange.faults import WS_KINDS, FaultSpec

API = "/api/v3"
WEIGHTS = {f"{API}/klines": 2, f"{API}/uiKlines": 2, f"{API}/exchangeInfo": 20}
QUOTES = ("USDT", "BUSD", "USDC", "BTC", "ETH", "EUR", "USD")
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def error(code: int, msg: str, status: int = 400, **headers: str) -> web.Response:
    return web.json_response(
        {"code": code, "msg": msg}, status=status, headers=headers, dumps=dumps
    )


def num(x: float) -> str:
    """A decimal string that parses back to exactly the same float."""
    return repr(float(x))


def kline_row(t: int, step: int, bar: tuple[float, ...]) -> list[int | str]:
    """One REST kline: the 12-element array of /api/v3/klines."""
    v, quote = bar[4], bar[3] * bar[4]
    tail = [num(quote), trades(v), num(v / 2), num(quote / 2), "0"]
    return [t, *map(num, bar), t + step - 1, *tail]


def kline_event(symbol: str, interval: str, t: int, step: int, bar: tuple[float, ...], *,
                final: bool, event_ms: int, first_trade: int) -> dict[str, object]:  # fmt: skip
    """One kline stream payload (``{"e":"kline",...}``); ``first_trade`` numbers the trades."""
    o, h, lo, c, v = map(num, bar)
    n, quote = trades(bar[4]), bar[3] * bar[4]
    first, last = (first_trade, first_trade + n - 1) if n else (-1, -1)
    k = {"t": t, "T": t + step - 1, "s": symbol, "i": interval, "f": first, "L": last,
         "o": o, "c": c, "h": h, "l": lo, "v": v, "n": n, "x": final,
         "q": num(quote), "V": num(bar[4] / 2), "Q": num(quote / 2), "B": "0"}  # fmt: skip
    return {"e": "kline", "E": event_ms, "s": symbol, "k": k}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (BTC, USDT); a stock ticker with no known quote suffix trades against USD."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USD"


class WeightLimiter:
    """Request weight over a rolling minute; 429 past the limit, 418 (a ban) if ignored.

    A client that sends again before the 429's Retry-After has passed is banned for twice that.
    """

    def __init__(self, limit: int, retry_after: int, wall: Callable[[], float] = time.monotonic):
        self.limit, self.retry_after, self._wall = limit, retry_after, wall
        self._log: deque[tuple[float, int]] = deque()
        self.used = 0
        self._penalty_until = self._ban_until = 0.0

    def admit(self, weight: int) -> tuple[int | None, int]:
        """(None, 0) to serve the request, or (429 | 418, Retry-After seconds)."""
        now = self._wall()
        while self._log and now - self._log[0][0] >= 60.0:
            self.used -= self._log.popleft()[1]
        if now < self._ban_until:
            return 418, math.ceil(self._ban_until - now)
        if now < self._penalty_until:
            self._ban_until = now + 2 * self.retry_after
            return 418, 2 * self.retry_after
        if self.used + weight > self.limit:
            self._penalty_until = now + self.retry_after
            return 429, self.retry_after
        self._log.append((now, weight))
        self.used += weight
        return None, 0


class BinanceRest:
    """GET /api/v3/{ping, time, exchangeInfo, klines, uiKlines}, with request-weight limits."""

    def __init__(self, book: Book, *, weight_limit: int, retry_after: int, stats: dict[str, int]):
        self.book, self.stats = book, stats
        self.limiter = WeightLimiter(weight_limit, retry_after)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{API}/ping", self.ping),
            web.get(f"{API}/time", self.time),
            web.get(f"{API}/exchangeInfo", self.exchange_info),
            web.get(f"{API}/klines", self.klines),
            web.get(f"{API}/uiKlines", self.klines),
        ]

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """Charge request weight on /api/ paths and report it in X-MBX-USED-WEIGHT-1M."""

        @web.middleware
        async def weigh(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith("/api/"):
                return await handler(request)
            status, retry = self.limiter.admit(WEIGHTS.get(request.path, 1))
            if status == 429:
                self.stats["rate_limited"] += 1
                msg = (f"Too much request weight used; current limit is {self.limiter.limit} "
                       "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                       "updates to avoid polling the API.")  # fmt: skip
                resp: web.StreamResponse = error(-1003, msg, 429, **{"Retry-After": str(retry)})
            elif status == 418:
                self.stats["banned"] += 1
                msg = ("Way too much request weight used; IP banned. Please use WebSocket "
                       "Streams for live updates to avoid bans.")  # fmt: skip
                resp = error(-1003, msg, 418, **{"Retry-After": str(retry)})
            else:
                resp = await handler(request)
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self.limiter.used)
            return resp

        return weigh

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.book.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        wanted = list(self.book.tapes)
        if "symbol" in request.query:
            wanted = [request.query["symbol"]]
        elif "symbols" in request.query:
            try:
                wanted = [str(s) for s in json.loads(request.query["symbols"])]
            except (ValueError, TypeError):
                return error(-1100, "Illegal characters found in parameter 'symbols'.")
        if any(s not in self.book.tapes for s in wanted):
            return error(-1121, "Invalid symbol.")
        limits = [dict(_RATE_LIMITS[0], limit=self.limiter.limit), *_RATE_LIMITS[1:]]
        info = {"timezone": "UTC", "serverTime": self.book.now_ms(), "rateLimits": limits,
                "exchangeFilters": [], "symbols": [symbol_info(s) for s in wanted]}  # fmt: skip
        return web.json_response(info, dumps=dumps)

    async def klines(self, request: web.Request) -> web.Response:
        q = request.query
        for name in ("symbol", "interval"):
            if not q.get(name):
                return error(
                    -1102,
                    f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                )
        symbol = q["symbol"]
        if symbol not in self.book.tapes:
            return error(-1121, "Invalid symbol.")
        if q["interval"] != self.book.interval:
            return error(-1120, "Invalid interval.")
        params: dict[str, int | None] = {}
        for name, default in (("limit", 500), ("startTime", None), ("endTime", None)):
            raw = q.get(name)
            if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
                return error(
                    -1100,
                    f"Illegal characters found in parameter '{name}'; legal "
                    "range is '^[0-9]{1,20}$'.",
                )
            params[name] = default if raw is None else int(raw)
        limit, start, end = params["limit"], params["startTime"], params["endTime"]
        assert limit is not None
        if not 1 <= limit <= 1000:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            return error(-1023, "Start time is greater than end time.")
        return web.json_response(self._rows(symbol, limit, start, end), dumps=dumps)

    def _rows(self, symbol: str, limit: int, start: int | None, end: int | None) -> list[list]:
        """Bars opened by now (the last may be in progress), oldest first, at most ``limit``."""
        book, now = self.book, self.book.now_ms()
        tape = book.tapes[symbol]
        hi = book.visible(symbol, now if end is None else min(end, now))
        if start is None:
            lo = max(0, hi - limit)
        else:
            lo = book.visible(symbol, start - 1)
            hi = min(hi, lo + limit)
        return [
            kline_row(int(tape.times[i]), book.step, book.bar(symbol, i, now))
            for i in range(lo, hi)
        ]


_SYMBOL = json.loads("""{"status": "TRADING", "baseAssetPrecision": 8, "quotePrecision": 8,
 "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
 "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT"],
 "icebergAllowed": true, "ocoAllowed": true, "otoAllowed": true,
 "quoteOrderQtyMarketAllowed": true, "allowTrailingStop": true, "cancelReplaceAllowed": true,
 "isSpotTradingAllowed": true, "isMarginTradingAllowed": false,
 "filters": [
  {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "9000000000.00000000",
   "tickSize": "0.00000001"},
  {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000000.00000000",
   "stepSize": "0.00000001"},
  {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000000000.00000000",
   "stepSize": "0.00000000"},
  {"filterType": "NOTIONAL", "minNotional": "1.00000000", "applyMinToMarket": true,
   "maxNotional": "9000000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5},
  {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}],
 "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
 "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
 "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]}""")
_RATE_LIMITS = json.loads("""[
 {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
 {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
 {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
 {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]""")


def symbol_info(symbol: str) -> dict[str, object]:
    """One exchangeInfo symbol, with every field ccxt's market parser reads."""
    base, quote = split_symbol(symbol)
    return {"symbol": symbol, "baseAsset": base, "quoteAsset": quote, **_SYMBOL}


class _Cursor:
    """The next event of one stream: bar ``i``, update ``k`` of ``u`` (``k == u`` is the final)."""

    __slots__ = ("i", "k", "symbol")

    def __init__(self, symbol: str, i: int) -> None:
        self.symbol, self.i, self.k = symbol, i, 1

    def due(self, book: Book, u: int) -> int:
        return int(book.tapes[self.symbol].times[self.i]) + (self.k * book.step) // u

    def advance(self, u: int) -> None:
        self.i, self.k = (self.i + 1, 1) if self.k == u else (self.i, self.k + 1)


class BinanceStreams:
    """The kline streams: /ws/<stream>, /stream?streams=a/b, and live SUBSCRIBE on either."""

    TICK = 0.02  # seconds between looks at the clock

    def __init__(self, book: Book, faults: FaultSpec, stats: dict[str, int], *,
                 ping_interval: float, max_connection_seconds: float,
                 updates_per_bar: int) -> None:  # fmt: skip
        if updates_per_bar < 1:
            raise ValueError(f"updates_per_bar must be >= 1, got {updates_per_bar}")
        self.book, self.faults, self.stats = book, faults, stats
        self.ping_interval, self.max_seconds = ping_interval, max_connection_seconds
        self.u = updates_per_bar
        self.sessions: set[_Session] = set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self.raw),
            web.get("/ws/{streams:.+}", self.raw),
            web.get("/stream", self.combined),
        ]

    async def raw(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.match_info.get("streams", "").split("/") if s]
        return await self._serve(request, names, combined=False)

    async def combined(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve(request, names, combined=True)

    def check(self, name: str) -> str | None:
        """Why a stream name is not served, or None."""
        symbol, sep, kind = name.partition("@kline_")
        if not sep or symbol != symbol.lower():
            return f"Invalid request: stream {name!r} is not <lowercase symbol>@kline_<interval>"
        if symbol.upper() not in self.book.tapes:
            return f"Invalid request: unknown symbol in stream {name!r}"
        if kind != self.book.interval:
            return f"Invalid request: interval {kind!r} is not served (only {self.book.interval})"
        return None

    async def _serve(
        self, request: web.Request, names: list[str], *, combined: bool
    ) -> web.StreamResponse:
        bad = next((e for e in map(self.check, names) if e), None)
        if bad:
            return web.json_response({"code": 2, "msg": bad}, status=400)
        ws = web.WebSocketResponse(autoping=False, timeout=1.0)
        await ws.prepare(request)
        self.stats["ws_connections"] += 1
        n = self.stats["ws_connections"]
        session = _Session(self, ws, request, combined, random.Random(f"{self.faults.seed}:{n}"))
        session.subscribe(names)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
        return ws

    async def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        await asyncio.gather(*(s.close(WSCloseCode.GOING_AWAY) for s in list(self.sessions)))


class _Session:
    """One WebSocket connection: its subscriptions, pings, lifetime and injected faults."""

    def __init__(self, owner: BinanceStreams, ws: web.WebSocketResponse, request: web.Request,
                 combined: bool, rng: random.Random) -> None:  # fmt: skip
        self.owner, self.ws, self.request = owner, ws, request
        self.combined, self.rng = combined, rng
        self.subs: dict[str, _Cursor] = {}
        self.held: dict[str, str] = {}  # stream -> final message held back by a reorder fault
        self.lock = asyncio.Lock()
        self.ping_sent: float | None = None  # wall time of the oldest unanswered ping

    def subscribe(self, names: list[str]) -> None:
        book, now = self.owner.book, self.owner.book.now_ms()
        for name in names:
            if name not in self.subs:
                symbol = name.partition("@")[0].upper()
                # start at the bar in progress now (or the next one); skip events already past
                cursor = _Cursor(symbol, book.closed(symbol, now))
                while cursor.i < len(book.tapes[symbol]) and cursor.due(book, self.owner.u) <= now:
                    cursor.advance(self.owner.u)
                self.subs[name] = cursor

    async def send(self, text: str) -> None:
        async with self.lock:
            await self.ws.send_str(text)
        self.owner.stats["ws_messages"] += 1

    async def close(self, code: int, message: bytes = b"") -> None:
        if not self.ws.closed:
            await self.ws.close(code=code, message=message)

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        loop, owner = asyncio.get_running_loop(), self.owner
        opened = last_ping = loop.time()
        pong_timeout = min(60.0, 3 * owner.ping_interval)
        try:
            while not self.ws.closed and not reader.done():
                await asyncio.sleep(owner.TICK)
                now = loop.time()
                if now - opened >= owner.max_seconds:
                    await self.send(dumps({"e": "serverShutdown", "E": owner.book.now_ms()}))
                    return await self.close(WSCloseCode.GOING_AWAY, b"connection lifetime")
                if self.ping_sent is not None and now - self.ping_sent > pong_timeout:
                    return await self.close(WSCloseCode.POLICY_VIOLATION, b"pong timeout")
                if now - last_ping >= owner.ping_interval:
                    await self.ws.ping(str(owner.book.now_ms()).encode())
                    last_ping, self.ping_sent = now, self.ping_sent or now
                if not await self._emit_due():
                    return None
        except ConnectionResetError:
            log.debug("websocket client went away")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self.close(WSCloseCode.GOING_AWAY)

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.TEXT:
                await self.send(dumps(self._control(msg.data)))
            elif msg.type is WSMsgType.PING:
                async with self.lock:
                    await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                self.ping_sent = None
            elif msg.type in _CLOSED:
                return

    def _control(self, text: str) -> dict[str, object]:
        """Answer SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS."""
        try:
            req = json.loads(text)
            method, params, rid = req["method"], req.get("params", []), req.get("id")
        except (ValueError, TypeError, KeyError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected method, params, id"}}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(self.subs), "id": rid}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return {"error": {"code": 2, "msg": f"Invalid request: method {method!r}"}, "id": rid}
        bad = next((e for e in map(self.owner.check, map(str, params)) if e), None)
        if bad:
            return {"error": {"code": 2, "msg": bad}, "id": rid}
        if method == "SUBSCRIBE":
            self.subscribe(params)
        for name in params if method == "UNSUBSCRIBE" else ():
            self.subs.pop(name, None)
            self.held.pop(name, None)
        return {"result": None, "id": rid}

    async def _emit_due(self) -> bool:
        """Send every event the clock has passed, in time order; False if a fault dropped us."""
        book, u, now = self.owner.book, self.owner.u, self.owner.book.now_ms()
        events = []
        for name, cur in self.subs.items():
            while cur.i < len(book.tapes[cur.symbol]) and cur.due(book, u) <= now:
                events.append((cur.due(book, u), name, cur.symbol, cur.i, cur.k))
                cur.advance(u)
        events.sort()
        for due, name, symbol, i, k in events:
            text = self._message(name, symbol, i, k, due)
            if k < u:
                await self.send(text)
            elif not await self._send_final(name, text):
                return False
        for name, cur in self.subs.items():
            if cur.i >= len(book.tapes[cur.symbol]) and name in self.held:
                await self.send(self.held.pop(name))
        return True

    def _message(self, name: str, symbol: str, i: int, k: int, due: int) -> str:
        book, u = self.owner.book, self.owner.u
        tape = book.tapes[symbol]
        bar = partial(tape.values[i], k / u)
        t = int(tape.times[i])
        payload = kline_event(symbol, book.interval, t, book.step, bar, final=k == u,
                              event_ms=due, first_trade=i * 1_000_000)  # fmt: skip
        return dumps({"stream": name, "data": payload} if self.combined else payload)

    async def _send_final(self, name: str, text: str) -> bool:
        """A final kline, through the WebSocket faults: drop, duplicate or reorder."""
        fault = self.owner.faults.draw(self.rng, WS_KINDS)
        if fault == "drop":
            self.owner.stats["drop"] += 1
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # no close frame: the client sees the connection die
            return False
        held = self.held.pop(name, None)
        if fault == "reorder" and held is None:
            self.owner.stats["reorder"] += 1
            self.held[name] = text
            return True
        if fault == "duplicate":
            self.owner.stats["duplicate"] += 1
        for out in [text] * (2 if fault == "duplicate" else 1) + ([held] if held else []):
            await self.send(out)
        return True
