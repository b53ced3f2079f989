"""Alpaca's trading API v2 as a :class:`~mlalgo.live.broker.Broker` (stocks and crypto).

Alpaca refuses a reused ``client_order_id`` outright (422), which makes the executor's
deterministic ids a second guard; the first is still :meth:`AlpacaBroker.order`, asked after
any :class:`StatusUnknown`. Alpaca's order object has no per-fill detail and no fees, so an order
that has finished is reported as one fill of its filled quantity at its average price, with an id
derived from Alpaca's order id (stable, so recording it twice is harmless) and no commission.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from mlalgo.live.broker import (
    CANCELLED,
    EXPIRED,
    FILLED,
    FINAL_STATES,
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
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)?$")
QTY_STEP = Decimal("0.000000001")  # Alpaca accepts fractional quantities to 9 decimals
STATUS = {"new": NEW, "accepted": NEW, "pending_new": NEW, "accepted_for_bidding": NEW,
          "held": NEW, "calculated": NEW, "pending_cancel": NEW, "pending_replace": NEW,
          "partially_filled": PARTIALLY_FILLED, "filled": FILLED, "canceled": CANCELLED,
          "replaced": CANCELLED, "stopped": FILLED, "done_for_day": EXPIRED,
          "expired": EXPIRED, "rejected": REJECTED, "suspended": REJECTED}  # fmt: skip


def format_qty(quantity: float) -> str:
    """|quantity| rounded down to 9 decimals, as plain decimals.

    >>> format_qty(-2.5), format_qty(1e-05)
    ('2.5', '0.00001')
    """
    q = Decimal(repr(abs(float(quantity)))).quantize(QTY_STEP, rounding=ROUND_DOWN)
    return format(q.normalize(), "f")


def epoch_ms(stamp: str) -> int:
    """RFC-3339 (Alpaca sends up to nanoseconds) to epoch ms.

    >>> epoch_ms("2024-01-02T03:04:05.123456789Z")
    1704164645123
    """
    match = _RFC3339.match(stamp)
    if match is None:
        raise BrokerError(f"not an RFC-3339 time: {stamp!r}")
    head, frac, zone = match.groups()
    micro = f".{frac[1:7]:0<6}" if frac else ""
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    return int(datetime.fromisoformat(f"{head}{micro}{zone}").timestamp() * 1000)


class AlpacaBroker:
    """Market orders on Alpaca (``shorting=True``); cash and positions in USD."""

    name = "alpaca"
    shorting = True

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        time_in_force: str = "day",
        timeout: float = 10.0,
        retries: int = 3,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.time_in_force, self._creds = time_in_force, credentials
        self._http = JsonHttp(base_url, timeout=timeout, retries=retries,
                              max_retry_after=max_retry_after,
                              sleep=sleep)  # fmt: skip

    # -- the Broker protocol ---------------------------------------------------------------

    def submit(self, order: Order) -> OrderState:
        cid, qty = order.client_order_id, format_qty(order.quantity)
        if Decimal(qty) == 0:
            raise OrderRejected(cid, f"quantity {order.quantity!r} rounds to zero")
        body = {"symbol": order.symbol, "qty": qty, "side": "buy" if order.quantity > 0 else
                "sell", "type": "market", "time_in_force": self.time_in_force,
                "client_order_id": cid}  # fmt: skip
        try:
            reply = self._call("POST", Call("/v2/orders", json=body), idempotent=False)
        except Unreachable as exc:
            raise StatusUnknown(cid, str(exc)) from None
        if reply.status >= 400:
            raise self._refusal(cid, reply)
        return _state(reply.body)

    def order(self, client_order_id: str, symbol: str) -> OrderState | None:
        cid = client_order_id
        call = Call("/v2/orders:by_client_order_id", params={"client_order_id": cid})
        try:
            reply = self._call("GET", call)
        except Unreachable as exc:
            raise StatusUnknown(cid, str(exc)) from None
        if reply.status == 404:
            return None
        return _state(self._ok(reply, f"order {cid}"))

    def open_orders(self) -> list[OrderState]:
        call = Call("/v2/orders", params={"status": "open", "limit": "500"})
        return [_state(o) for o in self._ok(self._query(call), "open orders")]

    def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel an open order; :class:`OrderRejected` when none is open under that id."""
        state = self.order(client_order_id, symbol)
        if state is None:
            raise OrderRejected(client_order_id, "no such order to cancel")
        path = f"/v2/orders/{state.broker_order_id}"
        try:
            reply = self._call("DELETE", Call(path), idempotent=False)
        except Unreachable as exc:
            raise StatusUnknown(client_order_id, str(exc)) from None
        if reply.status >= 400:
            raise self._refusal(client_order_id, reply)

    def account(self) -> Account:
        cash = float(self._ok(self._query(Call("/v2/account")), "account")["cash"])
        rows = self._ok(self._query(Call("/v2/positions")), "positions")
        return Account(cash=cash, positions={p["symbol"]: float(p["qty"]) for p in rows})

    # -- requests --------------------------------------------------------------------------

    def _call(self, method: str, call: Call, *, idempotent: bool = True) -> Reply:
        headers = {"APCA-API-KEY-ID": self._creds.key_id.reveal(),
                   "APCA-API-SECRET-KEY": self._creds.secret.reveal()}  # fmt: skip
        full = Call(call.path, params=call.params, json=call.json, headers=headers)
        return self._http.call(method, lambda: full, idempotent=idempotent)

    def _query(self, call: Call) -> Reply:
        try:
            return self._call("GET", call)
        except Unreachable as exc:
            raise BrokerError(str(exc)) from None

    def _ok(self, reply: Reply, what: str) -> Any:
        if reply.status >= 400:
            raise BrokerError(f"{what}: HTTP {reply.status} {_message(reply)}")
        return reply.body

    def _refusal(self, cid: str, reply: Reply) -> BrokerError:
        message = _message(reply)
        if reply.status == 401 or (reply.status == 403 and "forbidden" in message.lower()):
            return BrokerError(f"order {cid}: Alpaca refused our keys: {message}")
        return OrderRejected(cid, f"{message} (HTTP {reply.status})")


def _message(reply: Reply) -> str:
    body = reply.body
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def _state(body: dict[str, Any]) -> OrderState:
    side = 1 if body["side"] == "buy" else -1
    status = STATUS.get(body["status"], body["status"])
    filled = side * float(body.get("filled_qty") or 0)
    fills: tuple[Fill, ...] = ()
    if status in FINAL_STATES and filled and body.get("filled_avg_price") is not None:
        done = body.get("filled_at") or body.get("updated_at") or body["created_at"]
        fills = (Fill(f"alpaca:{body['id']}", body["client_order_id"], body["symbol"], filled,
                      float(body["filled_avg_price"]), 0.0, epoch_ms(done)),)  # fmt: skip
    return OrderState(
        client_order_id=body["client_order_id"],
        broker_order_id=body["id"],
        symbol=body["symbol"],
        status=status,
        quantity=side * float(body["qty"]),
        filled=filled,
        fills=fills,
    )
