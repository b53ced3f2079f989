"""Binance Spot through its signed REST API, as a :class:`~mlalgo.live.broker.Broker`.

Every order carries the executor's deterministic client order id as ``newClientOrderId`` and is
sent once: a 5xx, a timeout or a dropped connection raises :class:`StatusUnknown`, and the
executor asks :meth:`BinanceBroker.order` before anything is sent again (Binance itself accepts
a reused id once the first order is filled, so the query is the only guard). A -1021 (clock
drift) is the one refusal retried: the clock offset is re-synced from ``/api/v3/time`` and the
order re-signed, which is safe because a -1021 is refused before matching.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from mlalgo.live.broker import (
    CANCELLED,
    EXPIRED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REJECTED,
    Account,
    BrokerError,
    Fill,
    Order,
    OrderRejected,
    OrderState,
    StatusUnknown,
)
from mlalgo.live.brokers.rest import Call, JsonHttp, Reply, Unreachable
from mlalgo.secrets import Credentials

log = logging.getLogger(__name__)
API = "/api/v3"
FINEST_STEP = Decimal("0.00000001")  # Binance's finest quantity precision
STATUS = {"NEW": NEW, "PENDING_NEW": NEW, "PARTIALLY_FILLED": PARTIALLY_FILLED,
          "FILLED": FILLED, "CANCELED": CANCELLED, "PENDING_CANCEL": NEW, "REJECTED": REJECTED,
          "EXPIRED": EXPIRED, "EXPIRED_IN_MATCH": EXPIRED}  # fmt: skip
# Refusals that say the account or the clock is wrong, not the order.
SYSTEMIC = {-1021: "clock", -1022: "signature", -2014: "API key", -2015: "API key"}


class ApiError(BrokerError):
    """A definite refusal: ``{"code", "msg"}`` with a 4xx status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"HTTP {status} {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg


def sign(secret: str, payload: str) -> str:
    """hex(HMAC-SHA256(secret, payload)), Binance's ``signature``.

    >>> sign("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    ...      "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    ...      "&recvWindow=5000&timestamp=1499827319559")[:16]
    'c8db56825ae71d6d'
    """
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def format_quantity(quantity: float, step: Decimal) -> str:
    """|quantity| rounded down to the lot step, as plain decimals (never an exponent).

    >>> format_quantity(-1.5e-05, Decimal("0.00000001")), format_quantity(0.129, Decimal("0.01"))
    ('0.00001500', '0.12')
    """
    q = Decimal(repr(abs(float(quantity))))
    return format((q // step) * step, "f")


class BinanceBroker:
    """Market orders on Binance Spot (``shorting=False``: a sell needs the coins).

    ``symbols`` are the pairs :meth:`account` reports positions for (base balance of
    ``BTCUSDT`` is the ``BTC`` balance); ``quote`` is the account currency. ``clock`` is the
    local time in seconds; its offset to the server is learnt from ``/api/v3/time`` when the
    server answers -1021.
    """

    name = "binance"
    shorting = False

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        symbols: Sequence[str] = (),
        quote: str = "USDT",
        recv_window: int = 5000,
        timeout: float = 10.0,
        retries: int = 3,
        max_retry_after: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        bad = [s for s in symbols if not s.endswith(quote) or s == quote]
        if bad:
            raise BrokerError(f"symbols {bad} do not trade against {quote}; pass quote=")
        self.symbols, self.quote, self.recv_window = tuple(symbols), quote, recv_window
        self._creds, self._clock = credentials, clock
        self._http = JsonHttp(base_url, timeout=timeout, retries=retries,
                              max_retry_after=max_retry_after,
                              sleep=sleep)  # fmt: skip
        self.offset_ms = 0
        self._steps: dict[str, tuple[Decimal, Decimal]] = {}

    # -- the Broker protocol ---------------------------------------------------------------

    def submit(self, order: Order) -> OrderState:
        cid = order.client_order_id
        step, min_qty = self.lot_size(order.symbol)
        quantity = format_quantity(order.quantity, step)
        if order.quantity == 0 or Decimal(quantity) < max(min_qty, step):
            raise OrderRejected(cid, f"quantity {order.quantity!r} is below the lot size {step}")
        params = {"symbol": order.symbol, "side": "BUY" if order.quantity > 0 else "SELL",
                  "type": "MARKET", "quantity": quantity, "newClientOrderId": cid,
                  "newOrderRespType": "FULL"}  # fmt: skip
        try:
            body = self._signed("POST", "/order", params)
        except Unreachable as exc:
            raise StatusUnknown(cid, str(exc)) from None
        except ApiError as exc:
            raise self._refusal(cid, exc) from None
        side = 1 if body["side"] == "BUY" else -1
        fills = tuple(
            Fill(f"{order.symbol}:{f['tradeId']}", cid, order.symbol, side * float(f["qty"]),
                 float(f["price"]), self._commission(f, order.symbol, float(f["price"])),
                 int(body["transactTime"]))
            for f in body.get("fills", [])
        )  # fmt: skip
        return _state(body, fills)

    def order(self, client_order_id: str, symbol: str) -> OrderState | None:
        cid = client_order_id
        try:
            body = self._signed("GET", "/order", {"symbol": symbol, "origClientOrderId": cid})
            trades = self._signed("GET", "/myTrades",
                                  {"symbol": symbol, "orderId": str(body["orderId"])})  # fmt: skip
        except Unreachable as exc:
            raise StatusUnknown(cid, str(exc)) from None
        except ApiError as exc:
            if exc.code == -2013:
                return None
            raise BrokerError(f"order {cid}: {exc}") from None
        fills = tuple(
            Fill(f"{symbol}:{t['id']}", cid, symbol,
                 float(t["qty"]) if t["isBuyer"] else -float(t["qty"]), float(t["price"]),
                 self._commission(t, symbol, float(t["price"])), int(t["time"]))
            for t in trades
        )  # fmt: skip
        return _state(body, fills)

    def open_orders(self) -> list[OrderState]:
        return [_state(o, ()) for o in self._query("/openOrders", {})]

    def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel an open order; :class:`OrderRejected` when none is open under that id."""
        cid = client_order_id
        try:
            self._signed("DELETE", "/order", {"symbol": symbol, "origClientOrderId": cid})
        except Unreachable as exc:
            raise StatusUnknown(cid, str(exc)) from None
        except ApiError as exc:
            raise self._refusal(cid, exc) from None

    def account(self) -> Account:
        balances = {b["asset"]: float(b["free"]) + float(b["locked"])
                    for b in self._query("/account", {})["balances"]}  # fmt: skip
        positions = {s: balances.get(s.removesuffix(self.quote), 0.0) for s in self.symbols}
        return Account(cash=balances.get(self.quote, 0.0), positions=positions)

    def lot_size(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(step size, minimum quantity) of ``symbol`` from exchangeInfo's LOT_SIZE, read once;
        the finest precision when exchangeInfo cannot be read (the exchange then judges)."""
        if symbol in self._steps:
            return self._steps[symbol]
        try:
            info = self._public("/exchangeInfo", {"symbol": symbol})["symbols"][0]
            lot = next(f for f in info["filters"] if f["filterType"] == "LOT_SIZE")
            step, min_qty = Decimal(lot["stepSize"]).normalize(), Decimal(lot["minQty"])
        except (BrokerError, KeyError, IndexError, StopIteration) as exc:
            log.warning("no LOT_SIZE for %s (%s); sending 8 decimals", symbol, exc)
            return FINEST_STEP, Decimal(0)
        self._steps[symbol] = (step if step > 0 else FINEST_STEP, min_qty)
        return self._steps[symbol]

    # -- requests --------------------------------------------------------------------------

    def _query(self, path: str, params: dict[str, str]) -> Any:
        try:
            return self._signed("GET", path, params)
        except (Unreachable, ApiError) as exc:
            raise BrokerError(f"GET {API}{path}: {exc}") from None

    def _signed(self, method: str, path: str, params: dict[str, str]) -> Any:
        """A signed request; after a -1021 the clock is re-synced and the request sent again."""
        try:
            return self._send(method, path, params)
        except ApiError as exc:
            if exc.code != -1021:
                raise
            log.warning("Binance says our clock is off (%s); re-syncing", exc.msg)
        self._resync()
        return self._send(method, path, params)

    def _send(self, method: str, path: str, params: dict[str, str]) -> Any:
        key, secret = self._creds.key_id.reveal(), self._creds.secret.reveal()

        def build() -> Call:
            stamp = int(self._clock() * 1000) + self.offset_ms
            query = urlencode({**params, "recvWindow": self.recv_window, "timestamp": stamp})
            signed = f"{query}&signature={sign(secret, query)}"
            headers = {"X-MBX-APIKEY": key}
            if method == "POST":
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                return Call(API + path, data=signed, headers=headers)
            return Call(f"{API}{path}?{signed}", headers=headers)

        return _body(self._http.call(method, build, idempotent=method == "GET"))

    def _public(self, path: str, params: dict[str, str] | None = None) -> Any:
        call = Call(API + path, params=params)
        return _body(self._http.call("GET", lambda: call, idempotent=True))

    def _resync(self) -> None:
        before = self._clock()
        server_ms = int(self._public("/time")["serverTime"])
        local_ms = int((before + self._clock()) / 2 * 1000)
        self.offset_ms = server_ms - local_ms
        log.info("Binance clock offset now %d ms", self.offset_ms)

    # -- translation -----------------------------------------------------------------------

    def _refusal(self, cid: str, exc: ApiError) -> BrokerError:
        if exc.code in SYSTEMIC or exc.status in (401, 403):
            what = SYSTEMIC.get(exc.code, "access")
            return BrokerError(f"order {cid}: Binance refused our {what}: {exc.msg}")
        return OrderRejected(cid, f"{exc.msg} ({exc.code})")

    def _commission(self, fill: dict[str, Any], symbol: str, price: float) -> float:
        """The commission in the quote currency. Binance charges the received asset (converted
        at the fill price) unless fees are paid in another coin (BNB), which has no price here
        and is left out with a warning."""
        amount, asset = float(fill["commission"]), fill.get("commissionAsset", self.quote)
        if asset == self.quote or amount == 0:
            return amount
        if asset == symbol.removesuffix(self.quote):
            return amount * price
        log.warning("commission of %s %s not converted to %s", amount, asset, self.quote)
        return 0.0


def _body(reply: Reply) -> Any:
    if reply.status >= 400:
        body = reply.body if isinstance(reply.body, dict) else {}
        raise ApiError(reply.status, int(body.get("code", 0)), str(body.get("msg", reply.body)))
    return reply.body


def _state(body: dict[str, Any], fills: tuple[Fill, ...]) -> OrderState:
    side = 1 if body["side"] == "BUY" else -1
    return OrderState(
        client_order_id=body["clientOrderId"],
        broker_order_id=str(body["orderId"]),
        symbol=body["symbol"],
        status=STATUS.get(body["status"], body["status"].lower()),
        quantity=side * float(body["origQty"]),
        filled=side * float(body["executedQty"]),
        fills=fills,
    )
