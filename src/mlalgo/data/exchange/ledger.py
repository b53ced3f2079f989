"""The replay exchange's matching engine and books of account, shared by every venue.

A market order fills at once, in full, at the replay price of its symbol (the in-progress bar's
close at the replay clock, or the last close), so a broker client is tested against fills it can
predict. Amounts are :class:`~decimal.Decimal` so balances on the wire add up to the last digit.
Every client order id that reaches the engine is recorded in arrival order, duplicates and
rejections included, which is how a test proves an id was never sent twice.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from mlalgo.data.exchange.clock import Book

TICK = Decimal("0.00000001")  # price, quantity and commission precision (exchangeInfo filters)
NEW, FILLED, CANCELED, EXPIRED = "new", "filled", "canceled", "expired"


def quantize(x: Decimal) -> Decimal:
    return x.quantize(TICK, rounding=ROUND_HALF_EVEN)


class Rejected(Exception):
    """An order the engine refused: ``reason`` is venue-neutral, the venue words the message."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    quantity: Decimal  # signed: + bought, - sold
    price: Decimal
    commission: Decimal  # in the quote currency
    time_ms: int

    @property
    def quote_quantity(self) -> Decimal:
        """Quote currency exchanged, unsigned, at the quote precision (8 decimals)."""
        return quantize(abs(self.quantity) * self.price)


@dataclass
class LedgerOrder:
    order_id: int
    client_order_id: str
    symbol: str
    quantity: Decimal  # signed, as ordered
    created_ms: int
    status: str = NEW
    updated_ms: int = 0
    trades: list[Trade] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status == NEW

    @property
    def filled(self) -> Decimal:
        return sum((t.quantity for t in self.trades), Decimal(0))

    @property
    def notional(self) -> Decimal:
        """Quote currency exchanged, unsigned (Binance's cummulativeQuoteQty)."""
        return sum((t.quote_quantity for t in self.trades), Decimal(0))

    @property
    def average_price(self) -> Decimal | None:
        filled = abs(self.filled)
        return quantize(self.notional / filled) if filled else None


class Ledger:
    """One account: cash in the quote currency, signed positions by symbol, orders and trades.

    ``shorting=False`` is spot: selling more than the position, or buying for more than the
    cash, is refused (``insufficient_balance``); ``shorting=True`` allows short positions but
    still refuses a buy beyond the cash (no margin). ``hold=True`` leaves new orders open until
    :meth:`release`, the way a closed market queues them, so cancels and duplicate ids of open
    orders can be exercised. ``unique_ids`` is "open" (Binance: an id may be reused once its
    order is final) or "all" (Alpaca).
    """

    def __init__(
        self,
        book: Book,
        *,
        cash: float | Decimal,
        commission_bps: float,
        shorting: bool,
        unique_ids: str = "open",
        hold: bool = False,
    ) -> None:
        if unique_ids not in ("open", "all"):
            raise ValueError(f"unique_ids must be 'open' or 'all', got {unique_ids!r}")
        self.book, self.shorting, self.unique_ids, self.hold = book, shorting, unique_ids, hold
        self.rate = Decimal(repr(float(commission_bps))) / Decimal(10_000)
        self.cash = quantize(Decimal(repr(float(cash))))
        self.positions: dict[str, Decimal] = {}
        self.cost: dict[str, Decimal] = {}  # average entry price of each open position
        self.orders: list[LedgerOrder] = []
        self.received: list[str] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self.lock = threading.RLock()

    # -- queries ---------------------------------------------------------------------------

    def price(self, symbol: str) -> Decimal | None:
        """The replay price now: the in-progress bar's close, the last close, or None before
        the first bar opens."""
        now = self.book.now_ms()
        i = self.book.visible(symbol, now) - 1
        if i < 0:
            return None
        return quantize(Decimal(repr(self.book.bar(symbol, i, now)[3])))

    def find(
        self, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> LedgerOrder | None:
        """The latest order with this id (a client id may recur once its order is final)."""
        with self.lock:
            for order in reversed(self.orders):
                if order_id is not None and order.order_id != order_id:
                    continue
                if client_order_id is not None and order.client_order_id != client_order_id:
                    continue
                return order
        return None

    def open_orders(self, symbol: str | None = None) -> list[LedgerOrder]:
        with self.lock:
            return [o for o in self.orders if o.is_open and symbol in (None, o.symbol)]

    def trades(self, symbol: str | None = None, order_id: int | None = None) -> list[Trade]:
        with self.lock:
            return [
                t
                for o in self.orders
                for t in o.trades
                if symbol in (None, t.symbol) and order_id in (None, t.order_id)
            ]

    # -- commands --------------------------------------------------------------------------

    def receive(self, client_order_id: str) -> None:
        """Record an id as it arrives, before anything can refuse its order."""
        with self.lock:
            self.received.append(client_order_id)

    def submit(self, client_order_id: str, symbol: str, quantity: Decimal) -> LedgerOrder:
        """Accept a market order and fill it now (unless holding); raise :class:`Rejected`."""
        with self.lock:
            if symbol not in self.book.tapes:
                raise Rejected("unknown_symbol", f"{symbol} is not served")
            if quantity == 0:
                raise Rejected("bad_quantity", "quantity must not be zero")
            clash = self.find(client_order_id=client_order_id)
            if clash is not None and (self.unique_ids == "all" or clash.is_open):
                raise Rejected("duplicate", f"client order id {client_order_id} is in use")
            price = self.price(symbol)
            if price is None:
                raise Rejected("market_closed", f"no bar of {symbol} has opened yet")
            self._check(symbol, quantity, price)
            now = self.book.now_ms()
            order = LedgerOrder(next(self._order_ids), client_order_id, symbol, quantity, now)
            order.updated_ms = now
            self.orders.append(order)
            if not self.hold:
                self._fill(order, price, now)
            return order

    def cancel(self, order: LedgerOrder) -> LedgerOrder:
        with self.lock:
            if not order.is_open:
                raise Rejected("not_open", f"order {order.order_id} is {order.status}")
            order.status, order.updated_ms = CANCELED, self.book.now_ms()
            return order

    def release(self) -> list[LedgerOrder]:
        """Fill every held order at the current price, in arrival order; one that the account
        can no longer pay for expires."""
        with self.lock:
            done = []
            for order in self.open_orders():
                now, price = self.book.now_ms(), self.price(order.symbol)
                try:
                    if price is None:
                        raise Rejected("market_closed")
                    self._check(order.symbol, order.quantity, price)
                except Rejected:
                    order.status, order.updated_ms = EXPIRED, now
                else:
                    self._fill(order, price, now)
                done.append(order)
            return done

    # -- internals -------------------------------------------------------------------------

    def _check(self, symbol: str, quantity: Decimal, price: Decimal) -> None:
        if quantity > 0 and quantize(quantity * price) + self._fee(quantity, price) > self.cash:
            raise Rejected("insufficient_balance", "the cash does not cover the buy")
        held = self.positions.get(symbol, Decimal(0))
        if quantity < 0 and not self.shorting and -quantity > held:
            raise Rejected("insufficient_balance", f"the sell exceeds the {symbol} position")

    def _fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        return quantize(abs(quantity) * price * self.rate)

    def _fill(self, order: LedgerOrder, price: Decimal, now: int) -> None:
        q, symbol = order.quantity, order.symbol
        fee = self._fee(q, price)
        trade = Trade(next(self._trade_ids), order.order_id, symbol, q, price, fee, now)
        order.trades.append(trade)
        order.status, order.updated_ms = FILLED, now
        self.cash -= (trade.quote_quantity if q > 0 else -trade.quote_quantity) + fee
        held = self.positions.get(symbol, Decimal(0))
        after = held + q
        if after == 0:
            self.cost.pop(symbol, None)
        elif held == 0 or (held > 0) != (after > 0):
            self.cost[symbol] = price
        elif (held > 0) == (q > 0):
            self.cost[symbol] = quantize((held * self.cost[symbol] + q * price) / after)
        self.positions[symbol] = after
