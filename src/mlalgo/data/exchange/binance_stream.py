"""Binance kline WebSocket streams (/ws, /stream, live SUBSCRIBE) with injected faults.

Split from the REST handlers in ``binance`` so each module has one job; ``k.x`` is true only on
the final update of a bar, as on the real exchange.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

from aiohttp import WSCloseCode, WSMsgType, web

from mlalgo.data.exchange.binance import dumps, num
from mlalgo.data.exchange.clock import Book, partial, trades
from mlalgo.data.exchange.faults import WS_KINDS, FaultSpec

_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
log = logging.getLogger(__name__)


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


def _corrupted(text: str) -> str:
    """The same final kline with its high set below its low: valid JSON, an impossible bar."""
    payload = json.loads(text)
    k = (payload["data"] if "stream" in payload else payload)["k"]
    k["h"] = num(float(k["l"]) * 0.5)
    return dumps(payload)


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
        if fault in ("malformed", "corrupt"):
            self.owner.stats[fault] += 1
            text = text[: len(text) // 2] if fault == "malformed" else _corrupted(text)
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
