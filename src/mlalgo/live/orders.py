"""Orders between the journal and the broker: each intent sent once, followed to its end.

An intent is journalled before it is sent (``intended``), marked ``sent`` before the request
leaves, and settled from the broker's answers. A request whose answer was lost stays
``sent``: the broker is asked about it, and it goes out again only when the broker has not
seen it after ``unknown_wait`` seconds. The executor decides *what* to trade; this module
only makes sure the broker hears it exactly once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from mlalgo.live.broker import (
    CANCELLED,
    EXPIRED,
    FILLED,
    REJECTED,
    Broker,
    BrokerError,
    OrderRejected,
    OrderState,
    StatusUnknown,
)
from mlalgo.live.broker import Order as BrokerOrder
from mlalgo.live.events import emit
from mlalgo.live.journal import Intent, Journal
from mlalgo.live.risk import OrderRate
from mlalgo.live.stats import Stats


def broker_order(intent: Intent) -> BrokerOrder:
    sign = 1.0 if intent.side == "buy" else -1.0
    target = math.nan if intent.target is None else intent.target
    return BrokerOrder(intent.client_order_id, intent.symbol, sign * intent.quantity, target)


class OrderDesk:
    """The journal's intents, sent to one broker and followed there."""

    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        *,
        rate: OrderRate,
        unknown_wait: float,
        stats: Stats,
    ) -> None:
        self.journal, self.broker, self.rate = journal, broker, rate
        self.unknown_wait, self.stats = unknown_wait, stats

    def flush(self) -> None:
        """Send what is intended; what the order rate holds back waits in the journal.

        Orders of one symbol go out one at a time: while an earlier one is still out (its
        answer lost, or working at the broker), the next waits. Sent ahead of it, a sell could
        reach the exchange before the buy whose coins it sells."""
        waiting = self.journal.open_intents()
        busy = {i.symbol for i in waiting if i.state != "intended"}
        for intent in waiting:
            if intent.state != "intended" or intent.symbol in busy:
                continue
            if not self.rate.allow():
                emit("order_rate_limited", logging.WARNING, coid=intent.client_order_id)
                return
            self.send(intent)
            if self.journal.intent(intent.client_order_id).state in ("sent", "acked"):
                busy.add(intent.symbol)

    def send(self, intent: Intent, *, resend: bool = False) -> None:
        coid = intent.client_order_id
        if intent.quantity == 0.0:
            self.journal.complete(coid)
            return
        if not resend:
            self.journal.mark_sent(coid)  # before the request leaves
        self.rate.record()
        try:
            state = self.broker.submit(broker_order(intent))
        except OrderRejected as exc:
            self.stats.orders_rejected += 1
            self.journal.mark_rejected(coid, exc.message)
            emit("order_rejected", logging.WARNING, coid=coid, message=exc.message)
            return
        except StatusUnknown as exc:
            self.stats.orders_unknown += 1
            emit("order_status_unknown", logging.WARNING, coid=coid, message=exc.message)
            return  # stays "sent": poll asks the broker before anything is resent
        self.stats.orders_sent += 1
        emit(
            "order_sent",
            coid=coid,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            target=intent.target,
        )
        self.apply(self.journal.intent(coid), state)

    def apply(self, intent: Intent, state: OrderState) -> None:
        """The broker's answer about one order: its ack, new fills, and how it ended."""
        coid = intent.client_order_id
        if intent.state in ("intended", "sent"):
            self.journal.mark_acked(coid, state.broker_order_id)
        for fill in state.fills:
            if self.journal.record_fill(
                coid, fill.fill_id, fill.quantity, fill.price, fill.commission, fill.time_ms
            ):
                self.stats.fills += 1
                emit(
                    "fill",
                    coid=coid,
                    symbol=fill.symbol,
                    quantity=fill.quantity,
                    price=fill.price,
                    commission=fill.commission,
                )
        now = self.journal.intent(coid)
        if now.state not in ("intended", "sent", "acked"):
            return
        if state.status == FILLED:
            self.journal.complete(coid)
        elif state.status in (CANCELLED, EXPIRED):
            self.journal.mark_cancelled(coid, state.message or state.status)
        elif state.status == REJECTED:
            self.journal.mark_rejected(coid, state.message or "rejected")

    def poll(self, guard: Callable[[], str | None]) -> None:
        """Follow working orders; ask about the ones whose answer was lost.

        An intent in ``sent`` the broker does not know is sent again only once
        ``unknown_wait`` seconds have passed since it went out: a request held up on the way
        can still arrive, and a venue that frees a client order id once its order fills
        would take the second copy as a new order. While ``guard()`` names a guard that
        holds the account flat, such an order is voided instead, unless it goes flat itself:
        a decision from before a kill never reaches the broker after it."""
        for intent in self.journal.open_intents():
            if intent.state == "intended":
                continue
            coid = intent.client_order_id
            try:
                state = self.broker.order(coid, intent.symbol)
            except BrokerError as exc:
                emit("order_query_failed", logging.WARNING, coid=coid, message=exc.message)
                continue
            if state is not None:
                self.apply(intent, state)
                continue
            if intent.state != "sent":
                continue
            age = (time.time_ns() - self.journal.updated_ns(coid)) / 1e9
            if age < self.unknown_wait:
                continue
            reason = guard()
            if reason is not None and intent.target != 0.0:
                self.journal.mark_cancelled(coid, f"void: {reason}")
                emit("order_voided", logging.WARNING, coid=coid, reason=reason)
                continue
            emit("resend_unknown", coid=coid, waited=round(age, 3))
            self.send(intent, resend=True)

    def void_waiting(self, reason: str) -> list[Intent]:
        """Orders decided before a kill or a halt that have not gone out yet (waiting for the
        trading window or the order rate) never go out: they are cancelled in the journal.
        Those working at the broker are cancelled there (one that fills first is the
        executor's to sell again). Returns the voided intents."""
        voided = []
        for intent in self.journal.open_intents():
            coid = intent.client_order_id
            if intent.state == "intended":
                self.journal.mark_cancelled(coid, f"void: {reason}")
                voided.append(intent)
                emit("order_voided", logging.WARNING, coid=coid, reason=reason)
            elif intent.state == "acked" and intent.target != 0.0:
                try:
                    self.broker.cancel(coid, intent.symbol)
                except BrokerError as exc:  # filled or gone already: poll will know
                    emit("cancel_failed", logging.WARNING, coid=coid, message=exc.message)
                    continue
                emit("order_cancel_requested", logging.WARNING, coid=coid, reason=reason)
        return voided
