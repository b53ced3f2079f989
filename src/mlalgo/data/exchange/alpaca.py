"""Alpaca market data v2 historical bars: /v2/stocks/{symbol}/bars and /v2/stocks/bars.

Alpaca serves completed bars only, as JSON numbers, paged by an opaque ``next_page_token``;
alpaca-py uses the multi-symbol route. Both routes share one row walk, so a page token means the
same thing on either.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import UTC, datetime

import pandas as pd
from aiohttp import web

from mlalgo.data.exchange.binance import dumps
from mlalgo.data.exchange.clock import Book, trades
from mlalgo.data.intervals import ALPACA

ADJUSTMENTS = ("raw", "split", "dividend", "all")
MAX_LIMIT = 10_000


class AlpacaError(Exception):
    """A request Alpaca would refuse: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_token(symbol: str, ms: int) -> str:
    """Where the next page starts: the symbol and open time of its first bar."""
    return base64.urlsafe_b64encode(f"{symbol}|{ms}".encode()).decode()


def decode_token(token: str) -> tuple[str, int]:
    try:
        symbol, _, ms = base64.urlsafe_b64decode(token.encode()).decode().rpartition("|")
        return symbol, int(ms)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AlpacaError(400, "invalid page_token") from None


def authorize(request: web.Request, key: tuple[str, str] | None) -> None:
    """Check the key-pair headers (trading and data APIs alike); no key configured, no check."""
    if key is None:
        return
    key_id = request.headers.get("APCA-API-KEY-ID")
    secret = request.headers.get("APCA-API-SECRET-KEY")
    if not key_id or not secret:
        raise AlpacaError(401, "unauthorized.")
    ok_id = hmac.compare_digest(key_id.encode(), key[0].encode())
    ok_secret = hmac.compare_digest(secret.encode(), key[1].encode())
    if not (ok_id and ok_secret):
        raise AlpacaError(403, "forbidden.")


class AlpacaBars:
    """The two bars routes, with optional key-pair authentication."""

    def __init__(self, book: Book, key: tuple[str, str] | None = None) -> None:
        self.book, self._key = book, key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/stocks/bars", self.multi),
            web.get("/v2/stocks/{symbol}/bars", self.single),
        ]

    async def single(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        try:
            rows, token = self._page(request, [symbol])
        except AlpacaError as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        bars = [bar for _, bar in rows]
        body = {"bars": bars, "symbol": symbol, "next_page_token": token}
        return web.json_response(body, dumps=dumps)

    async def multi(self, request: web.Request) -> web.Response:
        raw = request.query.get("symbols", "")
        symbols = [s.strip() for s in raw.split(",") if s.strip()]
        try:
            if not symbols:
                raise AlpacaError(400, "missing symbols")
            rows, token = self._page(request, symbols)
        except AlpacaError as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        bars: dict[str, list[dict[str, object]]] = {}
        for symbol, bar in rows:
            bars.setdefault(symbol, []).append(bar)
        return web.json_response({"bars": bars, "next_page_token": token}, dumps=dumps)

    def _authorize(self, request: web.Request) -> None:
        authorize(request, self._key)

    def _page(
        self, request: web.Request, symbols: list[str]
    ) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
        """One page of (symbol, bar) rows, by symbol then time, and the token for the next."""
        self._authorize(request)
        q = request.query
        if ALPACA.get(self.book.interval) != q.get("timeframe"):
            raise AlpacaError(422, "invalid timeframe")
        limit = _int(q.get("limit", "1000"), "limit")
        if not 1 <= limit <= MAX_LIMIT:
            raise AlpacaError(422, f"invalid limit: must be between 1 and {MAX_LIMIT}")
        if q.get("adjustment", "raw") not in ADJUSTMENTS:
            raise AlpacaError(422, f"invalid adjustment: expected one of {ADJUSTMENTS}")
        desc = _choice(q.get("sort", "asc"), ("asc", "desc"), "sort") == "desc"
        now = self.book.now_ms()
        start, end = _time(q.get("start"), "start"), _time(q.get("end"), "end")
        resume = decode_token(q["page_token"]) if q.get("page_token") else None
        rows: list[tuple[str, dict[str, object]]] = []
        for symbol in sorted(set(symbols)):
            if resume is not None and symbol < resume[0]:
                continue
            lo, hi = self._range(symbol, now, start, end)
            if resume is not None and symbol == resume[0]:
                if desc:
                    hi = min(hi, self.book.visible(symbol, resume[1]))
                else:
                    lo = max(lo, self.book.visible(symbol, resume[1] - 1))
            order = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
            for i in order:
                if len(rows) == limit:
                    return rows, encode_token(symbol, int(self.book.tapes[symbol].times[i]))
                rows.append((symbol, self._bar(symbol, i)))
        return rows, None

    def _range(self, symbol: str, now: int, start: int | None, end: int | None) -> tuple[int, int]:
        """Index range of the closed bars with open time in [start, end]."""
        if symbol not in self.book.tapes:
            return 0, 0
        hi = self.book.closed(symbol, now)
        if end is not None:
            hi = min(hi, self.book.visible(symbol, end))
        lo = 0 if start is None else self.book.visible(symbol, start - 1)
        return lo, max(lo, hi)

    def _bar(self, symbol: str, i: int) -> dict[str, object]:
        tape = self.book.tapes[symbol]
        o, h, lo, c, v = (float(x) for x in tape.values[i])
        return {"t": rfc3339(int(tape.times[i])), "o": o, "h": h, "l": lo, "c": c, "v": v,
                "n": trades(v), "vw": (h + lo + c) / 3}  # fmt: skip


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise AlpacaError(422, f"invalid {name}: {raw!r} is not an integer") from None


def _choice(raw: str, allowed: tuple[str, ...], name: str) -> str:
    if raw not in allowed:
        raise AlpacaError(422, f"invalid {name}: expected one of {allowed}")
    return raw


def _time(raw: str | None, name: str) -> int | None:
    """RFC-3339 (or a plain date) to epoch ms; a naive time is taken as UTC."""
    if not raw:
        return None
    try:
        ts = pd.Timestamp(raw)
    except ValueError:
        raise AlpacaError(422, f"invalid {name}: {raw!r} is not an RFC-3339 time") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)
