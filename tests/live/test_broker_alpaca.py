"""The Alpaca broker against the replay exchange over real sockets: fills, shorts, 422
duplicates, 404 unknowns, and the ask-before-resend rule after a lost answer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.files import read_bar_file
from mlalgo.live.broker import (
    CANCELLED,
    FILLED,
    NEW,
    Broker,
    BrokerError,
    Order,
    OrderRejected,
    StatusUnknown,
)
from mlalgo.live.brokers import AlpacaBroker
from mlalgo.secrets import Credentials, Secret

ROOT = Path(__file__).resolve().parents[2]
STOCKS: pd.DataFrame = read_bar_file(ROOT / "data" / "sample" / "stocks_daily.csv")
KEY = ("alpaca-id", "alpaca-secret")


def price(symbol: str) -> float:
    """The fill price on a static clock: the last close on the 8-decimal tick."""
    last = float(STOCKS.loc[symbol]["close"].iloc[-1])
    return float(Decimal(repr(last)).quantize(Decimal("0.00000001")))


def broker(ex: ReplayExchange, key: tuple[str, str] = KEY) -> AlpacaBroker:
    creds = Credentials("alpaca", Secret(key[0]), Secret(key[1]))
    return AlpacaBroker(ex.url, creds, sleep=lambda seconds: None)


@pytest.fixture
def exchange():
    with ReplayExchange(STOCKS, alpaca_key=KEY, cash=100_000) as ex:
        yield ex


def test_a_filled_buy_is_one_fill_and_moves_cash_and_positions(exchange):
    client = broker(exchange)
    assert isinstance(client, Broker) and client.shorting

    state = client.submit(Order("buy-aapl", "AAPL", 10))

    p = price("AAPL")
    assert (state.status, state.quantity, state.filled) == (FILLED, 10.0, 10.0)
    (fill,) = state.fills
    assert (fill.quantity, fill.price, fill.commission) == (10.0, p, 0.0)
    assert fill.fill_id == f"alpaca:{state.broker_order_id}"
    assert fill.time_ms == exchange.now().value // 1_000_000
    assert client.order("buy-aapl", "AAPL") == state
    account = client.account()
    assert account.positions == {"AAPL": 10.0}
    assert account.cash == pytest.approx(100_000 - 10 * p, abs=1e-8)
    assert client.open_orders() == []


def test_a_short_sale_is_a_negative_position(exchange):
    client = broker(exchange)
    state = client.submit(Order("short-ibm", "IBM", -4))
    assert (state.quantity, state.filled, state.fills[0].quantity) == (-4.0, -4.0, -4.0)
    client.submit(Order("long-msft", "MSFT", 2.5))
    account = client.account()
    assert account.positions == {"IBM": -4.0, "MSFT": 2.5}
    assert account.cash == pytest.approx(100_000 + 4 * price("IBM") - 2.5 * price("MSFT"))


def test_a_reused_client_order_id_is_rejected_with_alpacas_422(exchange):
    client = broker(exchange)
    client.submit(Order("once", "AAPL", 1))
    with pytest.raises(OrderRejected, match="client_order_id must be unique") as caught:
        client.submit(Order("once", "AAPL", 1))
    assert caught.value.client_order_id == "once"
    assert client.account().positions == {"AAPL": 1.0}


def test_an_unknown_order_is_none(exchange):
    assert broker(exchange).order("never-sent", "AAPL") is None


def test_a_buy_beyond_buying_power_is_rejected(exchange):
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        broker(exchange).submit(Order("whale", "AAPL", 1e6))


def test_wrong_keys_are_a_configuration_error(exchange):
    client = broker(exchange, key=("alpaca-id", "wrong"))
    with pytest.raises(BrokerError, match="keys") as caught:
        client.submit(Order("bad-key", "AAPL", 1))
    assert not isinstance(caught.value, OrderRejected | StatusUnknown)
    with pytest.raises(BrokerError):
        client.account()


def test_an_open_order_is_listed_and_cancelled():
    with ReplayExchange(STOCKS, alpaca_key=KEY, hold_orders=True) as ex:
        client = broker(ex)
        state = client.submit(Order("queued", "MSFT", 3))
        assert (state.status, state.filled, state.fills) == (NEW, 0.0, ())
        assert [o.client_order_id for o in client.open_orders()] == ["queued"]

        client.cancel("queued", "MSFT")

        assert client.order("queued", "MSFT").status == CANCELLED and client.open_orders() == []
        with pytest.raises(OrderRejected, match="not cancelable"):
            client.cancel("queued", "MSFT")
        with pytest.raises(OrderRejected, match="no such order"):
            client.cancel("ghost", "MSFT")


def test_a_lost_order_is_found_by_asking_and_its_id_is_sent_once(exchange):
    client = broker(exchange)
    exchange.faults = FaultSpec(rate_lost=1.0)
    with pytest.raises(StatusUnknown):
        client.submit(Order("lost", "IBM", 2))
    exchange.faults = FaultSpec()
    state = client.order("lost", "IBM")
    assert state is not None and (state.status, state.filled) == (FILLED, 2.0)
    assert state.fills[0].price == price("IBM")
    assert exchange.client_order_ids("alpaca") == ["lost"]


def test_a_5xx_before_processing_leaves_no_order(exchange):
    client = broker(exchange)
    exchange.faults = FaultSpec(rate_5xx=1.0)
    with pytest.raises(StatusUnknown):
        client.submit(Order("never", "IBM", 2))
    exchange.faults = FaultSpec()
    assert client.order("never", "IBM") is None
    assert exchange.client_order_ids("alpaca") == []
