"""Alpaca trading API v2 over the replay ledger: orders, positions and the account.

Bodies are JSON with numbers as strings, errors are ``{"code": ..., "message": ...}`` with
Alpaca's statuses (403 buying power, 404 unknown order, 422 invalid or duplicate), so a client
tested here speaks to paper-api.alpaca.markets unchanged. Market orders fill at once (unless the
ledger holds them) and short selling is allowed.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from aiohttp import web

from mlalgo.data.exchange.alpaca import AlpacaError, authorize
from mlalgo.data.exchange.binance import dumps, split_symbol
from mlalgo.data.exchange.ledger import CANCELED, EXPIRED, FILLED, Ledger, LedgerOrder, Rejected

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAMESPACE = uuid.UUID("6f1c1d3e-5a55-4f3b-9a63-0d6d1f0c2a71")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
MAX_CLIENT_ID = 48
CLOSED = (FILLED, CANCELED, EXPIRED)
_REJECTIONS = {
    "duplicate": (422, 40010001, "client_order_id must be unique"),
    "insufficient_balance": (403, 40310000, "insufficient buying power"),
    "market_closed": (422, 42210000, "asset has no price yet"),
    "unknown_symbol": (422, 42210000, "asset not found"),
    "bad_quantity": (422, 40010001, "qty must be > 0"),
}


class TradingError(AlpacaError):
    """An Alpaca trading refusal: HTTP status, Alpaca's numeric code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(status, message)
        self.code = code


def text(x: Decimal | None) -> str | None:
    """A decimal string without exponent or trailing zeros, as Alpaca sends numbers."""
    return None if x is None else format(x.normalize(), "f")


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def order_uuid(order: LedgerOrder) -> str:
    return str(uuid.uuid5(NAMESPACE, f"order-{order.order_id}"))


def asset(symbol: str) -> tuple[str, str]:
    """(asset_id, asset_class) of a symbol: a ticker without a crypto quote is a US equity."""
    base, quote = split_symbol(symbol)
    kind = "us_equity" if base == symbol and quote == "USD" else "crypto"
    return str(uuid.uuid5(NAMESPACE, f"asset-{symbol}")), kind


def order_body(order: LedgerOrder, time_in_force: str = "day") -> dict[str, object]:
    filled = abs(order.filled)
    asset_id, asset_class = asset(order.symbol)
    created, updated = rfc3339(order.created_ms), rfc3339(order.updated_ms)
    done = {FILLED: "filled_at", CANCELED: "canceled_at", EXPIRED: "expired_at"}
    stamps = {name: updated if order.status == s else None for s, name in done.items()}
    return {"id": order_uuid(order), "client_order_id": order.client_order_id,
            "created_at": created, "updated_at": updated, "submitted_at": created,
            **stamps, "failed_at": None, "replaced_at": None, "replaced_by": None,
            "replaces": None, "asset_id": asset_id, "symbol": order.symbol,
            "asset_class": asset_class, "notional": None, "qty": text(abs(order.quantity)),
            "filled_qty": text(filled), "filled_avg_price": text(order.average_price),
            "order_class": "simple", "order_type": "market", "type": "market",
            "side": "buy" if order.quantity > 0 else "sell", "time_in_force": time_in_force,
            "limit_price": None, "stop_price": None, "status": order.status,
            "extended_hours": False, "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None}  # fmt: skip


class AlpacaTrading:
    """POST/GET /v2/orders, /v2/orders:by_client_order_id, /v2/orders/{id}, /v2/positions,
    /v2/account."""

    def __init__(self, ledger: Ledger, key: tuple[str, str] | None = None) -> None:
        self.ledger, self._key = ledger, key
        self._auto_ids = itertools.count(1)
        self._tif: dict[int, str] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/orders", self._guard(self.new_order)),
            web.get("/v2/orders", self._guard(self.list_orders)),
            web.get("/v2/orders:by_client_order_id", self._guard(self.by_client_id)),
            web.get("/v2/orders/{order_id}", self._guard(self.get_order)),
            web.delete("/v2/orders/{order_id}", self._guard(self.cancel_order)),
            web.get("/v2/positions", self._guard(self.positions)),
            web.get("/v2/account", self._guard(self.account)),
        ]

    def _guard(self, handler: Route) -> Route:
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                authorize(request, self._key)
                return await handler(request)
            except TradingError as exc:
                body = {"code": exc.code, "message": exc.message}
                return web.json_response(body, status=exc.status, dumps=dumps)
            except AlpacaError as exc:
                return web.json_response({"message": exc.message}, status=exc.status)

        return route

    # -- orders ----------------------------------------------------------------------------

    async def new_order(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            raise TradingError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise TradingError(400, 40010000, "request body format is invalid")
        client_id = str(body.get("client_order_id") or f"replay-{next(self._auto_ids)}")
        self.ledger.receive(client_id)
        if len(client_id) > MAX_CLIENT_ID:
            raise TradingError(422, 40010001, "client_order_id must be no more than 48 characters")
        symbol = str(body.get("symbol") or "")
        if not symbol:
            raise TradingError(422, 40010001, "symbol is required")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise TradingError(422, 40010001, "side must be buy or sell")
        if body.get("type") != "market":
            raise TradingError(422, 40010001, "type must be market: the replay exchange fills "
                               "market orders only")  # fmt: skip
        tif = body.get("time_in_force")
        if tif not in TIME_IN_FORCE:
            raise TradingError(422, 40010001, f"time_in_force must be one of {TIME_IN_FORCE}")
        qty = _qty(body.get("qty"))
        try:
            order = self.ledger.submit(client_id, symbol, qty if side == "buy" else -qty)
        except Rejected as exc:
            raise TradingError(*_REJECTIONS[exc.reason]) from None
        self._tif[order.order_id] = tif
        return self._json(order)

    async def list_orders(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise TradingError(422, 40010001, "status must be open, closed or all")
        limit = _int(request.query.get("limit", "50"), "limit")
        if not 1 <= limit <= 500:
            raise TradingError(422, 40010001, "limit must be between 1 and 500")
        with self.ledger.lock:
            orders = [o for o in self.ledger.orders
                      if status == "all" or (status == "open") == o.is_open]  # fmt: skip
        if request.query.get("direction", "desc") == "desc":
            orders.reverse()
        bodies = [order_body(o, self._tif.get(o.order_id, "day")) for o in orders[:limit]]
        return web.json_response(bodies, dumps=dumps)

    async def by_client_id(self, request: web.Request) -> web.Response:
        client_id = request.query.get("client_order_id", "")
        order = self.ledger.find(client_order_id=client_id) if client_id else None
        if order is None:
            raise TradingError(404, 40410000, "order not found")
        return self._json(order)

    async def get_order(self, request: web.Request) -> web.Response:
        return self._json(self._by_uuid(request.match_info["order_id"]))

    async def cancel_order(self, request: web.Request) -> web.Response:
        order = self._by_uuid(request.match_info["order_id"])
        try:
            self.ledger.cancel(order)
        except Rejected:
            raise TradingError(422, 42210000, "order is not cancelable") from None
        return web.Response(status=204)

    # -- positions and account -------------------------------------------------------------

    async def positions(self, request: web.Request) -> web.Response:
        with self.ledger.lock:
            held = [(s, q, self.ledger.cost[s]) for s, q in sorted(self.ledger.positions.items())
                    if q != 0]  # fmt: skip
        return web.json_response([self._position(*row) for row in held], dumps=dumps)

    async def account(self, request: web.Request) -> web.Response:
        with self.ledger.lock:
            cash = self.ledger.cash
            values = [q * (self.ledger.price(s) or self.ledger.cost[s])
                      for s, q in self.ledger.positions.items() if q != 0]  # fmt: skip
        long_value = sum((v for v in values if v > 0), Decimal(0))
        short_value = sum((v for v in values if v < 0), Decimal(0))
        equity = cash + long_value + short_value
        body = {"id": str(uuid.uuid5(NAMESPACE, "account")), "account_number": "PA0REPLAY",
                "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
                "cash": text(cash), "buying_power": text(max(cash, Decimal(0))),
                "regt_buying_power": text(max(cash, Decimal(0))),
                "non_marginable_buying_power": text(max(cash, Decimal(0))),
                "portfolio_value": text(equity), "equity": text(equity),
                "last_equity": text(equity), "long_market_value": text(long_value),
                "short_market_value": text(short_value), "multiplier": "1",
                "shorting_enabled": True, "pattern_day_trader": False,
                "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
                "trade_suspended_by_user": False, "daytrade_count": 0,
                "created_at": rfc3339(0)}  # fmt: skip
        return web.json_response(body, dumps=dumps)

    # -- helpers ---------------------------------------------------------------------------

    def _json(self, order: LedgerOrder) -> web.Response:
        body = order_body(order, self._tif.get(order.order_id, "day"))
        return web.json_response(body, dumps=dumps)

    def _by_uuid(self, order_id: str) -> LedgerOrder:
        with self.ledger.lock:
            for order in self.ledger.orders:
                if order_uuid(order) == order_id:
                    return order
        raise TradingError(404, 40410000, "order not found")

    def _position(self, symbol: str, qty: Decimal, entry: Decimal) -> dict[str, object]:
        price = self.ledger.price(symbol) or entry
        asset_id, asset_class = asset(symbol)
        value, basis = qty * price, qty * entry
        pl = value - basis
        plpc = pl / abs(basis) if basis else Decimal(0)
        return {"asset_id": asset_id, "symbol": symbol, "exchange": "REPLAY",
                "asset_class": asset_class, "avg_entry_price": text(entry), "qty": text(qty),
                "qty_available": text(qty), "side": "long" if qty > 0 else "short",
                "market_value": text(value), "cost_basis": text(basis),
                "unrealized_pl": text(pl), "unrealized_plpc": text(plpc),
                "unrealized_intraday_pl": text(pl), "unrealized_intraday_plpc": text(plpc),
                "current_price": text(price), "lastday_price": text(price),
                "change_today": "0"}  # fmt: skip


def _qty(raw: object) -> Decimal:
    try:
        qty = Decimal(str(raw))
    except InvalidOperation:
        raise TradingError(422, 40010001, "qty is required and must be a number") from None
    if not qty.is_finite() or qty <= 0:
        raise TradingError(422, 40010001, "qty must be > 0")
    return qty


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise TradingError(422, 40010001, f"invalid {name}: {raw!r} is not an integer") from None
