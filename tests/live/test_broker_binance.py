"""The Binance broker against the replay exchange over real sockets: signing, clock re-sync,
rejections, and the rule that an order whose fate is unknown is asked about, never re-sent."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import make_bars
from mlalgo.data.exchange import FaultSpec, ReplayExchange
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
from mlalgo.live.brokers import BinanceBroker
from mlalgo.secrets import Credentials, Secret

KEY, SECRET = "binance-key", "binance-secret"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
TICK = Decimal("0.00000001")


def crypto(n: int = 240) -> pd.DataFrame:
    """Synthetic 1m BTCUSDT and ETHUSDT bars (a seeded random walk)."""
    rng = np.random.default_rng(2)
    times = pd.date_range("2024-03-01", periods=n, freq="1min", tz="UTC")
    frames = []
    for base, symbol in ((60_000.0, "BTCUSDT"), (3_000.0, "ETHUSDT")):
        close = base * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[base, close[:-1]]
        frame = pd.DataFrame({"time": times, "open": open_, "close": close,
                              "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                              "volume": rng.uniform(1, 50, n)})  # fmt: skip
        frames.append(make_bars(frame, symbol=symbol))
    return pd.concat(frames).sort_index()


BARS = crypto()


def price(symbol: str) -> float:
    """The fill price on a static clock: the last close on the 8-decimal tick."""
    return float(Decimal(repr(float(BARS.loc[symbol]["close"].iloc[-1]))).quantize(TICK))


def creds(secret: str = SECRET) -> Credentials:
    return Credentials("binance", Secret(KEY), Secret(secret))


def broker(ex: ReplayExchange, secret: str = SECRET, **kw) -> BinanceBroker:
    kw.setdefault("sleep", lambda seconds: None)
    return BinanceBroker(ex.url, creds(secret), symbols=SYMBOLS, **kw)


@pytest.fixture
def exchange():
    with ReplayExchange(BARS, binance_key=(KEY, SECRET), cash=20_000) as ex:
        yield ex


def test_a_filled_buy_reads_back_the_same_fills_and_moves_the_account(exchange):
    client = broker(exchange)
    assert isinstance(client, Broker) and not client.shorting

    state = client.submit(Order("intent-1", "BTCUSDT", 0.2))

    p = price("BTCUSDT")
    assert (state.status, state.quantity, state.filled) == (FILLED, 0.2, 0.2)
    assert state.client_order_id == "intent-1" and not state.is_open
    (fill,) = state.fills
    assert (fill.client_order_id, fill.symbol, fill.quantity, fill.price) == (
        "intent-1", "BTCUSDT", 0.2, p)  # fmt: skip
    assert fill.commission == pytest.approx(0.2 * p * 0.001, abs=1e-8)
    assert client.order("intent-1", "BTCUSDT") == state  # myTrades gives the same fills
    account = client.account()
    assert account.positions == {"BTCUSDT": 0.2, "ETHUSDT": 0.0}
    assert account.cash == pytest.approx(20_000 - 0.2 * p - fill.commission, abs=1e-8)
    assert account.cash == exchange.cash("binance")
    assert client.open_orders() == []


def test_a_sell_returns_signed_quantities_and_fills(exchange):
    client = broker(exchange)
    client.submit(Order("in", "ETHUSDT", 1.5))
    state = client.submit(Order("out", "ETHUSDT", -1.5))
    assert (state.quantity, state.filled, state.fills[0].quantity) == (-1.5, -1.5, -1.5)
    assert client.account().positions["ETHUSDT"] == 0.0
    fill_ids = {f.fill_id for s in ("in", "out") for f in client.order(s, "ETHUSDT").fills}
    assert len(fill_ids) == 2


def test_quantities_follow_the_lot_step_without_exponents(exchange):
    client = broker(exchange)
    state = client.submit(Order("tiny", "BTCUSDT", 1.5e-05))
    assert state.filled == 1.5e-05
    with pytest.raises(OrderRejected, match="below the lot size"):
        client.submit(Order("dust", "BTCUSDT", 1e-09))
    assert exchange.client_order_ids("binance") == ["tiny"]  # the dust never left


def test_a_wrong_secret_is_a_configuration_error_not_a_rejection(exchange):
    with pytest.raises(BrokerError, match="signature") as caught:
        broker(exchange, secret="not-the-secret").submit(Order("bad-sig", "BTCUSDT", 0.1))
    assert not isinstance(caught.value, OrderRejected | StatusUnknown)
    assert exchange.client_order_ids("binance") == []
    assert "not-the-secret" not in repr(creds("not-the-secret"))


def test_a_server_clock_ahead_gets_1021_then_resync_then_the_order():
    with ReplayExchange(BARS, binance_key=(KEY, SECRET), clock_skew_ms=30_000) as ex:
        client = broker(ex)
        state = client.submit(Order("skewed", "BTCUSDT", 0.01))
        assert state.status == FILLED and client.offset_ms != 0
        assert ex.client_order_ids("binance") == ["skewed"]  # the refused try never arrived
        assert client.order("skewed", "BTCUSDT").status == FILLED


def test_a_client_clock_an_hour_behind_is_corrected_the_same_way(exchange):
    client = broker(exchange, clock=lambda: time.time() - 3600)
    assert client.submit(Order("late", "ETHUSDT", 0.1)).status == FILLED
    assert exchange.client_order_ids("binance") == ["late"]


def test_spot_refuses_a_sell_without_coins_and_a_buy_beyond_cash(exchange):
    client = broker(exchange)
    with pytest.raises(OrderRejected, match="insufficient balance"):
        client.submit(Order("naked-short", "BTCUSDT", -0.1))
    with pytest.raises(OrderRejected, match="insufficient balance"):
        client.submit(Order("too-big", "BTCUSDT", 1.0))
    assert client.order("naked-short", "BTCUSDT") is None
    assert client.account().positions == {"BTCUSDT": 0.0, "ETHUSDT": 0.0}


def test_a_duplicate_open_order_is_refused_and_an_open_order_can_be_cancelled():
    with ReplayExchange(BARS, binance_key=(KEY, SECRET), hold_orders=True) as ex:
        client = broker(ex)
        state = client.submit(Order("queued", "BTCUSDT", 0.01))
        assert (state.status, state.filled, state.fills) == (NEW, 0.0, ())
        assert [o.client_order_id for o in client.open_orders()] == ["queued"]
        with pytest.raises(OrderRejected, match="Duplicate order sent"):
            client.submit(Order("queued", "BTCUSDT", 0.01))

        client.cancel("queued", "BTCUSDT")

        assert client.order("queued", "BTCUSDT").status == CANCELLED
        assert client.open_orders() == []
        with pytest.raises(OrderRejected, match="Unknown order"):
            client.cancel("queued", "BTCUSDT")


def test_a_lost_order_is_found_by_asking_and_its_id_is_sent_once(exchange):
    client = broker(exchange)
    client.submit(Order("warm-up", "ETHUSDT", 0.1))
    assert client.lot_size("BTCUSDT") == (TICK, TICK)  # read now, not under the faults below
    exchange.faults = FaultSpec(rate_lost=1.0)

    with pytest.raises(StatusUnknown) as caught:
        client.submit(Order("lost", "BTCUSDT", 0.05))

    exchange.faults = FaultSpec()
    assert caught.value.client_order_id == "lost"
    state = client.order("lost", "BTCUSDT")
    assert state is not None and state.status == FILLED and state.filled == 0.05
    (fill,) = state.fills
    assert fill.price == price("BTCUSDT") and fill.client_order_id == "lost"
    assert exchange.client_order_ids("binance") == ["warm-up", "lost"]


def test_a_5xx_before_processing_leaves_no_order(exchange):
    client = broker(exchange)
    client.lot_size("BTCUSDT")
    exchange.faults = FaultSpec(rate_5xx=1.0)
    with pytest.raises(StatusUnknown):
        client.submit(Order("never", "BTCUSDT", 0.05))
    exchange.faults = FaultSpec()
    assert client.order("never", "BTCUSDT") is None
    assert exchange.client_order_ids("binance") == []


def test_queries_wait_out_a_429_but_orders_are_not_resent(exchange):
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # stands in for the wait: the limit lifts meanwhile
        waits.append(seconds)
        exchange.faults = FaultSpec()

    client = broker(exchange, sleep=sleep)
    client.lot_size("BTCUSDT")
    exchange.faults = FaultSpec(rate_429=1.0, retry_after=7)
    assert client.account().cash == 20_000
    assert waits == [7.0]

    exchange.faults = FaultSpec(rate_429=1.0, retry_after=7)
    with pytest.raises(StatusUnknown, match="429"):
        client.submit(Order("limited", "BTCUSDT", 0.01))
    assert waits == [7.0] and exchange.client_order_ids("binance") == []


def test_the_broker_modules_load_without_pandas_or_the_server_side():
    code = ("import sys, mlalgo.live.brokers; "
            "bad = [m for m in ('pandas', 'mlflow', 'sklearn', 'optuna', 'numpy', "
            "'mlalgo.data.exchange') if m in sys.modules]; assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
