"""What the executor needs from a broker, and what a broker may answer.

Three answers are kept apart because the executor acts on each differently: an order the
broker accepted (:class:`OrderState`), one it definitely refused (:class:`OrderRejected`:
nothing happened, the intent ends), and one whose fate is unknown (:class:`StatusUnknown`: a
5xx, a timeout, a dropped connection; the order may or may not exist, so the executor asks
:meth:`Broker.order` before anything is sent again). Quantities are signed (+ buy, - sell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Order states, lower case whatever the broker spells them.
NEW = "new"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
EXPIRED = "expired"
OPEN_STATES = (NEW, PARTIALLY_FILLED)
FINAL_STATES = (FILLED, CANCELLED, REJECTED, EXPIRED)


class BrokerError(RuntimeError):
    """A broker call failed in a way that is neither a rejection nor an unknown status
    (bad credentials, a malformed answer, a configuration error)."""


class OrderRejected(BrokerError):
    """The broker refused the order: it does not exist there, and never will."""

    def __init__(self, client_order_id: str, message: str) -> None:
        super().__init__(f"order {client_order_id} rejected: {message}")
        self.client_order_id = client_order_id
        self.message = message


class StatusUnknown(BrokerError):
    """The request may or may not have reached the broker; query before any retry."""

    def __init__(self, client_order_id: str, message: str) -> None:
        super().__init__(f"order {client_order_id} status unknown: {message}")
        self.client_order_id = client_order_id
        self.message = message


@dataclass(frozen=True, slots=True)
class Order:
    """A market order. ``target`` is the exposure (fraction of the account) it moves the
    symbol to; a broker that sizes at the fill (the paper broker) uses it, others use
    ``quantity``, sized by the executor at the decision's close."""

    client_order_id: str
    symbol: str
    quantity: float  # signed: + buy, - sell
    target: float = float("nan")


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str  # the broker's trade id; unique per broker, so recording a fill is idempotent
    client_order_id: str
    symbol: str
    quantity: float  # signed
    price: float
    commission: float  # in the account currency
    time_ms: int


@dataclass(frozen=True, slots=True)
class OrderState:
    client_order_id: str
    broker_order_id: str
    symbol: str
    status: str  # one of OPEN_STATES or FINAL_STATES
    quantity: float  # signed, as ordered
    filled: float  # signed, filled so far
    fills: tuple[Fill, ...] = ()
    message: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


@dataclass(frozen=True, slots=True)
class Account:
    cash: float  # in the account currency (USDT, USD)
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed units


@runtime_checkable
class Broker(Protocol):
    name: str
    shorting: bool  # False on a spot exchange: targets below zero are clipped to flat

    def submit(self, order: Order) -> OrderState:
        """Send a market order; raises :class:`OrderRejected` or :class:`StatusUnknown`."""
        ...

    def order(self, client_order_id: str, symbol: str) -> OrderState | None:
        """The order's state and fills, or None when the broker never received it."""
        ...

    def open_orders(self) -> list[OrderState]: ...

    def cancel(self, client_order_id: str, symbol: str) -> None: ...

    def account(self) -> Account: ...
