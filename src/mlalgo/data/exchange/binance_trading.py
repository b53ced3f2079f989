"""Binance Spot signed endpoints over the replay ledger: order, openOrders, account, myTrades.

Payloads carry the documented fields, numbers as 8-decimal strings the way Binance sends them,
and refusals carry Binance's codes and messages, so a broker client tested here meets nothing
new on the real exchange. Only MARKET orders are supported; they fill at once unless the ledger
holds them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

from aiohttp import web

from mlalgo.data.exchange.binance import API, dumps, split_symbol
from mlalgo.data.exchange.binance_signing import BinanceError, SignedGate, illegal, missing
from mlalgo.data.exchange.ledger import TICK, Ledger, LedgerOrder, Rejected, Trade

RESP_TYPES = ("ACK", "RESULT", "FULL")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_QUANTITY = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_REJECTIONS = {
    "duplicate": (-2010, "Duplicate order sent."),
    "insufficient_balance": (-2010, "Account has insufficient balance for requested action."),
    "market_closed": (-2010, "Market is closed."),
    "unknown_symbol": (-1121, "Invalid symbol."),
    "bad_quantity": (-1013, "Filter failure: LOT_SIZE"),
}
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def fmt(x: Decimal) -> str:
    return f"{x:.8f}"


ZERO = fmt(Decimal(0))


def _status(order: LedgerOrder) -> str:
    return order.status.upper()


def _side(order: LedgerOrder) -> str:
    return "BUY" if order.quantity > 0 else "SELL"


def order_result(order: LedgerOrder) -> dict[str, object]:
    """The RESULT fields of a new order (also the body of a cancel)."""
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "transactTime": order.created_ms,
            "price": ZERO, "origQty": fmt(abs(order.quantity)),
            "executedQty": fmt(abs(order.filled)), "origQuoteOrderQty": ZERO,
            "cummulativeQuoteQty": fmt(order.notional), "status": _status(order),
            "timeInForce": "GTC", "type": "MARKET", "side": _side(order),
            "workingTime": order.created_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER"}  # fmt: skip


def order_query(order: LedgerOrder) -> dict[str, object]:
    """One order as GET /api/v3/order and /api/v3/openOrders show it."""
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "price": ZERO,
            "origQty": fmt(abs(order.quantity)), "executedQty": fmt(abs(order.filled)),
            "cummulativeQuoteQty": fmt(order.notional), "status": _status(order),
            "timeInForce": "GTC", "type": "MARKET", "side": _side(order), "stopPrice": ZERO,
            "icebergQty": ZERO, "time": order.created_ms, "updateTime": order.updated_ms,
            "isWorking": True, "workingTime": order.created_ms, "origQuoteOrderQty": ZERO,
            "selfTradePreventionMode": "EXPIRE_MAKER"}  # fmt: skip


class BinanceTrading:
    """POST/GET/DELETE /api/v3/order, GET /api/v3/{openOrders, account, myTrades}."""

    def __init__(self, ledger: Ledger, gate: SignedGate, *, quote: str = "USDT") -> None:
        self.ledger, self.gate, self.quote = ledger, gate, quote
        self._auto_ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{API}/order", self._signed(self.new_order)),
            web.get(f"{API}/order", self._signed(self.query_order)),
            web.delete(f"{API}/order", self._signed(self.cancel_order)),
            web.get(f"{API}/openOrders", self._signed(self.open_orders)),
            web.get(f"{API}/account", self._signed(self.account)),
            web.get(f"{API}/myTrades", self._signed(self.my_trades)),
        ]

    def _signed(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request, await self.gate.verify(request))
            except BinanceError as exc:
                return exc.response()

        return route

    # -- handlers --------------------------------------------------------------------------

    async def new_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        client_id = p.get("newClientOrderId") or f"replay-{next(self._auto_ids)}"
        self.ledger.receive(client_id)
        if not _CLIENT_ID.match(client_id):
            raise illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        symbol = self._symbol(p)
        side = _required(p, "side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if _required(p, "type") != "MARKET":
            raise BinanceError(-1116, "Invalid orderType.")
        resp_type = p.get("newOrderRespType", "FULL")
        if resp_type not in RESP_TYPES:
            raise BinanceError(-1177, "Invalid newOrderRespType.")
        quantity = _quantity(_required(p, "quantity"))
        try:
            order = self.ledger.submit(client_id, symbol, quantity if side == "BUY" else -quantity)
        except Rejected as exc:
            raise BinanceError(*_REJECTIONS[exc.reason]) from None
        body = order_result(order)
        if resp_type == "ACK":
            body = {k: body[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId",
                                         "transactTime")}  # fmt: skip
        elif resp_type == "FULL":
            body["fills"] = [self._fill(t) for t in order.trades]
        return web.json_response(body, dumps=dumps)

    async def query_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        order = self._lookup(p)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return web.json_response(order_query(order), dumps=dumps)

    async def cancel_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        order = self._lookup(p)
        try:
            if order is None:
                raise Rejected("unknown")
            self.ledger.cancel(order)
        except Rejected:
            raise BinanceError(-2011, "Unknown order sent.") from None
        body = order_result(order)
        body["origClientOrderId"] = order.client_order_id
        body["clientOrderId"] = p.get("newClientOrderId") or f"cancel-{next(self._auto_ids)}"
        body["transactTime"] = order.updated_ms
        return web.json_response(body, dumps=dumps)

    async def open_orders(self, request: web.Request, p: dict[str, str]) -> web.Response:
        symbol = self._symbol(p) if p.get("symbol") else None
        orders = self.ledger.open_orders(symbol)
        return web.json_response([order_query(o) for o in orders], dumps=dumps)

    async def account(self, request: web.Request, p: dict[str, str]) -> web.Response:
        with self.ledger.lock:
            held = {split_symbol(s)[0]: self.ledger.positions.get(s, Decimal(0))
                    for s in self.ledger.book.tapes}  # fmt: skip
            balances = [(self.quote, self.ledger.cash), *sorted(held.items())]
        if p.get("omitZeroBalances") == "true":
            balances = [(asset, amount) for asset, amount in balances if amount != 0]
        bps = int(self.ledger.rate * 10_000)
        rate = fmt(self.ledger.rate)
        body = {"makerCommission": bps, "takerCommission": bps, "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": ZERO, "seller": ZERO},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": self.ledger.book.now_ms(), "accountType": "SPOT",
                "balances": [{"asset": a, "free": fmt(x), "locked": ZERO} for a, x in balances],
                "permissions": ["SPOT"], "uid": 1}  # fmt: skip
        return web.json_response(body, dumps=dumps)

    async def my_trades(self, request: web.Request, p: dict[str, str]) -> web.Response:
        symbol = self._symbol(p)
        order_id = _int(p, "orderId")
        from_id, limit = _int(p, "fromId") or 0, _int(p, "limit") or 500
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        trades = [t for t in self.ledger.trades(symbol, order_id) if t.trade_id >= from_id]
        rows = [self._trade(t) for t in trades[:limit]]
        return web.json_response(rows, dumps=dumps)

    # -- helpers ---------------------------------------------------------------------------

    def _symbol(self, p: dict[str, str]) -> str:
        symbol = _required(p, "symbol")
        if symbol not in self.ledger.book.tapes:
            raise BinanceError(-1121, "Invalid symbol.")
        return symbol

    def _lookup(self, p: dict[str, str]) -> LedgerOrder | None:
        symbol = self._symbol(p)
        order_id, client_id = _int(p, "orderId"), p.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                               "but both were empty/null!")  # fmt: skip
        order = self.ledger.find(client_order_id=client_id, order_id=order_id)
        return order if order is not None and order.symbol == symbol else None

    def _fill(self, t: Trade) -> dict[str, object]:
        return {"price": fmt(t.price), "qty": fmt(abs(t.quantity)),
                "commission": fmt(t.commission), "commissionAsset": self.quote,
                "tradeId": t.trade_id}  # fmt: skip

    def _trade(self, t: Trade) -> dict[str, object]:
        return {"symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id, "orderListId": -1,
                "price": fmt(t.price), "qty": fmt(abs(t.quantity)),
                "quoteQty": fmt(t.quote_quantity), "commission": fmt(t.commission),
                "commissionAsset": self.quote, "time": t.time_ms, "isBuyer": t.quantity > 0,
                "isMaker": False, "isBestMatch": True}  # fmt: skip


def _required(p: dict[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise missing(name)
    return value


def _int(p: dict[str, str], name: str) -> int | None:
    raw = p.get(name)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        raise illegal(name, "^[0-9]{1,20}$")
    return int(raw)


def _quantity(raw: str) -> Decimal:
    """A quantity on the LOT_SIZE grid (step and minimum 0.00000001), or -1013."""
    if not _QUANTITY.match(raw):
        raise illegal("quantity", "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
    try:
        q = Decimal(raw)
    except InvalidOperation:
        raise illegal("quantity", "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from None
    if q < TICK or q % TICK != 0:
        raise BinanceError(-1013, "Filter failure: LOT_SIZE")
    return q
