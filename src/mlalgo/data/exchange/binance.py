"""Binance Spot REST market data, as the wire shows it: klines, exchangeInfo, weight limits.

Payloads follow the documented format exactly (prices and volumes as strings, ``closeTime =
openTime + interval - 1``), so an adapter that works here works against the real exchange.
Decimal strings are ``repr(float)`` so clients get the exact stored float back. The kline
WebSocket streams live in ``binance_stream``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from mlalgo.data.exchange.clock import Book, trades

API = "/api/v3"
WEIGHTS = {f"{API}/klines": 2, f"{API}/uiKlines": 2, f"{API}/exchangeInfo": 20,
           f"{API}/order": 4, f"{API}/openOrders": 6, f"{API}/account": 20,
           f"{API}/myTrades": 20}  # fmt: skip
QUOTES = ("USDT", "BUSD", "USDC", "BTC", "ETH", "EUR", "USD")
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
