"""The replay exchange's order endpoints over real sockets, signed by hand as the docs say.

Binance requests are built and HMAC-signed here with nothing but the standard library, so these
tests pin the wire format independently of our broker clients; Alpaca is plain JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
import requests

from mlalgo.bars import make_bars
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.files import read_bar_file

ROOT = Path(__file__).resolve().parents[2]
STOCKS = ROOT / "data" / "sample" / "stocks_daily.csv"
KEY, SECRET = "replay-key", "replay-secret"
TICK = Decimal("0.00000001")
DUPLICATE = {"code": -2010, "msg": "Duplicate order sent."}
AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
BROKE = {"code": -2010, "msg": "Account has insufficient balance for requested action."}


def crypto(n: int = 300) -> pd.DataFrame:
    """Synthetic 1m BTCUSDT and ETHUSDT bars (a seeded random walk)."""
    rng = np.random.default_rng(1)
    times = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    frames = []
    for base, symbol in ((40_000.0, "BTCUSDT"), (2_000.0, "ETHUSDT")):
        close = base * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[base, close[:-1]]
        frame = pd.DataFrame({"time": times, "open": open_, "close": close,
                              "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                              "volume": rng.uniform(1, 50, n)})  # fmt: skip
        frames.append(make_bars(frame, symbol=symbol))
    return pd.concat(frames).sort_index()


def last_close(bars: pd.DataFrame, symbol: str) -> Decimal:
    """The fill price on a static clock: the last stored close, on the 8-decimal tick."""
    return Decimal(repr(float(bars.loc[symbol]["close"].iloc[-1]))).quantize(TICK)


def signed(ex: ReplayExchange, method: str, path: str, *, secret: str = SECRET,
           key: str | None = KEY, stamp: int | None = None, **params: object
           ) -> requests.Response:  # fmt: skip
    """A signed request: query string, ``timestamp``, then ``&signature=`` (POST: in the body)."""
    params["timestamp"] = int(time.time() * 1000) if stamp is None else stamp
    query = urlencode(params)
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": key} if key is not None else {}
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return requests.post(ex.url + path, data=f"{query}&signature={sig}", headers=headers,
                             timeout=10)  # fmt: skip
    return requests.request(method, f"{ex.url}{path}?{query}&signature={sig}", headers=headers,
                            timeout=10)  # fmt: skip


def buy(ex: ReplayExchange, cid: str, qty: str, symbol: str = "BTCUSDT", side: str = "BUY",
        order_type: str = "MARKET", **kw: object) -> requests.Response:  # fmt: skip
    return signed(ex, "POST", "/api/v3/order", symbol=symbol, side=side, type=order_type,
                  quantity=qty, newClientOrderId=cid, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return crypto()


@pytest.fixture
def binance(bars):
    with ReplayExchange(bars, binance_key=(KEY, SECRET), cash=10_000) as ex:
        yield ex


# -- Binance: orders, fills, account ---------------------------------------------------------


def test_market_buy_fills_at_the_last_close_with_commission_in_the_quote(binance, bars):
    price = last_close(bars, "BTCUSDT")
    resp = buy(binance, "buy-1", "0.10000000")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    fee = (Decimal("0.1") * price * Decimal("0.001")).quantize(TICK)
    quote = (Decimal("0.1") * price).quantize(TICK)
    assert body["fills"] == [{"price": f"{price:.8f}", "qty": "0.10000000",
                              "commission": f"{fee:.8f}", "commissionAsset": "USDT",
                              "tradeId": 1}]  # fmt: skip
    assert (body["status"], body["side"], body["type"], body["clientOrderId"]) == (
        "FILLED", "BUY", "MARKET", "buy-1")  # fmt: skip
    assert (body["origQty"], body["executedQty"]) == ("0.10000000", "0.10000000")
    assert body["cummulativeQuoteQty"] == f"{quote:.8f}" and body["orderListId"] == -1

    account = signed(binance, "GET", "/api/v3/account").json()
    balances = {b["asset"]: (b["free"], b["locked"]) for b in account["balances"]}
    cash = Decimal(10_000) - quote - fee
    assert balances == {"USDT": (f"{cash:.8f}", "0.00000000"),
                        "BTC": ("0.10000000", "0.00000000"),
                        "ETH": ("0.00000000", "0.00000000")}  # fmt: skip
    assert account["accountType"] == "SPOT" and account["canTrade"]
    assert binance.positions("binance") == {"BTCUSDT": 0.1}
    assert binance.ledger("binance").cash == cash

    trades = signed(binance, "GET", "/api/v3/myTrades", symbol="BTCUSDT").json()
    assert len(trades) == 1
    assert {k: trades[0][k] for k in ("symbol", "id", "orderId", "price", "qty", "quoteQty",
                                      "commission", "commissionAsset", "isBuyer", "isMaker")} == {
        "symbol": "BTCUSDT", "id": 1, "orderId": body["orderId"], "price": f"{price:.8f}",
        "qty": "0.10000000", "quoteQty": f"{quote:.8f}", "commission": f"{fee:.8f}",
        "commissionAsset": "USDT", "isBuyer": True, "isMaker": False}  # fmt: skip


def test_order_is_found_by_client_id_or_order_id_and_unknown_ones_are_2013(binance):
    order_id = buy(binance, "find-me", "0.01").json()["orderId"]
    by_cid = signed(binance, "GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="find-me")
    by_id = signed(binance, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=order_id)
    assert by_cid.json() == by_id.json()
    assert by_cid.json()["status"] == "FILLED" and by_cid.json()["executedQty"] == "0.01000000"
    unknown = signed(binance, "GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="nope")
    assert (unknown.status_code, unknown.json()) == (
        400, {"code": -2013, "msg": "Order does not exist."})  # fmt: skip
    wrong_symbol = signed(binance, "GET", "/api/v3/order", symbol="ETHUSDT", orderId=order_id)
    assert wrong_symbol.json()["code"] == -2013
    neither = signed(binance, "GET", "/api/v3/order", symbol="BTCUSDT")
    assert neither.json()["code"] == -1102
    assert signed(binance, "GET", "/api/v3/myTrades", symbol="BTCUSDT",
                  orderId=order_id + 1).json() == []  # fmt: skip


def test_ack_and_result_response_types(binance):
    ack = buy(binance, "ack", "0.01", newOrderRespType="ACK").json()
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = buy(binance, "result", "0.01", newOrderRespType="RESULT").json()
    assert "fills" not in result and result["status"] == "FILLED"


def test_spot_refuses_what_the_account_cannot_pay_or_deliver(binance):
    assert buy(binance, "sell-nothing", "0.01", side="SELL").json() == BROKE
    assert buy(binance, "too-big", "1").json() == BROKE  # 1 BTC > 10 000 USDT
    assert buy(binance, "lot", "0.000000001").json() == {
        "code": -1013, "msg": "Filter failure: LOT_SIZE"}  # fmt: skip
    assert buy(binance, "pair", "1", symbol="DOGEUSDT").json()["code"] == -1121
    assert buy(binance, "limit", "1", order_type="LIMIT").json()["code"] == -1116
    buy(binance, "ok", "0.01")
    assert buy(binance, "sell-too-much", "0.02", side="SELL").json() == BROKE
    assert buy(binance, "sell-all", "0.01", side="SELL").json()["status"] == "FILLED"
    assert binance.positions("binance") == {}
    arrived = ["sell-nothing", "too-big", "lot", "pair", "limit", "ok", "sell-too-much", "sell-all"]
    assert binance.client_order_ids("binance") == arrived
    assert binance.cash("binance") < 10_000  # two commissions paid


def test_held_orders_are_open_refuse_duplicates_and_can_be_cancelled(bars):
    with ReplayExchange(bars, binance_key=(KEY, SECRET), hold_orders=True) as ex:
        first = buy(ex, "held", "0.01").json()
        assert (first["status"], first["executedQty"], first["fills"]) == ("NEW", "0.00000000", [])
        assert buy(ex, "held", "0.01").json() == DUPLICATE
        buy(ex, "other", "0.02", symbol="ETHUSDT")
        everywhere = signed(ex, "GET", "/api/v3/openOrders").json()
        assert [o["clientOrderId"] for o in everywhere] == ["held", "other"]
        btc = signed(ex, "GET", "/api/v3/openOrders", symbol="BTCUSDT").json()
        assert [o["clientOrderId"] for o in btc] == ["held"]

        cancel = signed(ex, "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="held")
        assert cancel.status_code == 200, cancel.text
        cancelled = cancel.json()
        assert (cancelled["status"], cancelled["origClientOrderId"]) == ("CANCELED", "held")
        again = signed(ex, "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="held")
        assert again.json() == {"code": -2011, "msg": "Unknown order sent."}

        assert ex.release_orders() == 1  # "other" fills now
        assert signed(ex, "GET", "/api/v3/openOrders").json() == []
        assert ex.positions("binance") == {"ETHUSDT": 0.02}
        reused = buy(ex, "held", "0.01").json()  # Binance: an id is free again once final
        assert reused["status"] == "NEW" and reused["orderId"] != first["orderId"]
        assert ex.client_order_ids("binance") == ["held", "held", "other", "held"]


def test_fill_price_is_the_bar_in_progress_on_a_running_clock(bars):
    start = bars.index.get_level_values("time")[150] + pd.Timedelta(seconds=15)
    with ReplayExchange(bars, binance_key=(KEY, SECRET), speed=1e-9, start=start) as ex:
        stored = bars.loc["ETHUSDT"].iloc[150]
        quarter = stored["open"] + 0.25 * (stored["close"] - stored["open"])
        fill = buy(ex, "mid-bar", "0.5", symbol="ETHUSDT").json()["fills"][0]
        assert fill["price"] == f"{Decimal(repr(float(quarter))).quantize(TICK):.8f}"
        assert buy(ex, "t", "0.5").json()["transactTime"] == ex.now().value // 1_000_000


# -- Binance: the door -----------------------------------------------------------------------


def test_api_key_signature_and_timestamp_are_checked_before_anything_happens(binance):
    def code(resp: requests.Response) -> tuple[int, int]:
        return resp.status_code, resp.json()["code"]

    assert code(buy(binance, "no-key", "0.01", key=None)) == (401, -2014)
    assert code(buy(binance, "bad-key", "0.01", key="someone-else")) == (401, -2015)
    wrong = buy(binance, "bad-secret", "0.01", secret="wrong")
    assert wrong.status_code == 400
    assert wrong.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    now = int(time.time() * 1000)
    stale = buy(binance, "stale", "0.01", stamp=now - 6000)
    assert stale.json() == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }
    assert buy(binance, "wide", "0.01", stamp=now - 6000, recvWindow=10_000).status_code == 200
    ahead = buy(binance, "ahead", "0.01", stamp=now + 5000)
    assert ahead.json()["msg"] == AHEAD
    assert buy(binance, "window", "0.01", recvWindow=60_001).json()["code"] == -1131
    unsigned = requests.get(binance.url + "/api/v3/account", headers={"X-MBX-APIKEY": KEY},
                            params={"timestamp": now}, timeout=5)  # fmt: skip
    assert unsigned.json()["code"] == -1102
    assert binance.client_order_ids("binance") == ["wide"]  # refused at the door: never arrived


def test_signature_covers_query_string_then_body_without_separator(binance):
    query = "symbol=BTCUSDT&side=BUY&type=MARKET"
    body = f"quantity=0.01&newClientOrderId=split&timestamp={int(time.time() * 1000)}"
    sig = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    resp = requests.post(f"{binance.url}/api/v3/order?{query}", data=f"{body}&signature={sig}",
                         headers=headers, timeout=5)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["clientOrderId"] == "split"


def test_a_skewed_server_clock_refuses_then_serverTime_fixes_it(bars):
    with ReplayExchange(bars, binance_key=(KEY, SECRET), clock_skew_ms=60_000) as ex:
        assert buy(ex, "skewed", "0.01").json()["code"] == -1021
        server = requests.get(ex.url + "/api/v3/time", timeout=5).json()["serverTime"]
        assert server == ex.now().value // 1_000_000  # /time is the replay clock, as before
        assert buy(ex, "synced", "0.01", stamp=server).status_code == 200
        assert buy(ex, "wall-synced", "0.01", stamp=int(time.time() * 1000) + 60_000).ok


# -- faults ----------------------------------------------------------------------------------


def test_a_lost_order_is_placed_though_the_client_hears_a_failure(binance):
    binance.faults = FaultSpec(rate_lost=1.0)
    outcomes = []
    for i in range(6):
        try:
            outcomes.append(buy(binance, f"lost-{i}", "0.01").status_code)
        except requests.ConnectionError:
            outcomes.append("dropped")
    binance.faults = FaultSpec()
    assert set(outcomes) <= {500, 502, 503, "dropped"} and "dropped" in outcomes
    assert binance.stats["lost"] == 6
    assert binance.positions("binance") == {"BTCUSDT": pytest.approx(0.06)}
    found = signed(binance, "GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="lost-0")
    assert found.json()["status"] == "FILLED"


def test_a_5xx_answers_before_the_order_is_processed(binance):
    binance.faults = FaultSpec(rate_5xx=1.0)
    assert buy(binance, "never", "0.01").status_code in (500, 502, 503)
    binance.faults = FaultSpec()
    assert binance.client_order_ids("binance") == [] and binance.positions("binance") == {}


def test_lost_is_a_fault_kind_that_parses_and_keeps_positional_fields():
    spec = FaultSpec.parse("lost=0.25,seed=3")
    assert spec == FaultSpec(seed=3, rate_lost=0.25) and spec.any()
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec(0, 0.5).rate("5xx") == 0.5  # positional fields keep their meaning
    assert FaultSpec.uniform(0.1).rate("lost") == FaultSpec.parse("all=0.1").rate("lost") == 0


# -- Alpaca ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    return read_bar_file(STOCKS)


@pytest.fixture
def alpaca(stocks):
    with ReplayExchange(stocks, alpaca_key=("id", "secret"), cash=50_000) as ex:
        yield ex


def post(ex: ReplayExchange, **order: object) -> requests.Response:
    body = {"type": "market", "time_in_force": "day"} | order
    return requests.post(ex.url + "/v2/orders", json=body, headers=AUTH, timeout=5)


def get(ex: ReplayExchange, path: str, **params: object) -> requests.Response:
    return requests.get(ex.url + path, params=params, headers=AUTH, timeout=5)


AUTH = {"APCA-API-KEY-ID": "id", "APCA-API-SECRET-KEY": "secret"}


def test_alpaca_market_order_fills_and_reads_back_three_ways(alpaca, stocks):
    price = Decimal(repr(float(stocks.loc["AAPL"]["close"].iloc[-1]))).quantize(TICK)
    resp = post(alpaca, symbol="AAPL", qty="10", side="buy", client_order_id="a-1")
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert (order["status"], order["filled_qty"], order["qty"], order["side"]) == (
        "filled", "10", "10", "buy")  # fmt: skip
    assert Decimal(order["filled_avg_price"]) == price and order["asset_class"] == "us_equity"
    assert order["filled_at"] is not None and order["canceled_at"] is None
    by_cid = get(alpaca, "/v2/orders:by_client_order_id", client_order_id="a-1").json()
    assert by_cid == order == get(alpaca, f"/v2/orders/{order['id']}").json()
    assert get(alpaca, "/v2/orders", status="closed").json() == [order]
    assert get(alpaca, "/v2/orders").json() == []  # default status=open

    account = get(alpaca, "/v2/account").json()
    assert Decimal(account["cash"]) == Decimal(50_000) - 10 * price  # commission-free default
    assert Decimal(account["equity"]) == Decimal(50_000)
    assert account["currency"] == "USD" and account["status"] == "ACTIVE"


def test_alpaca_refuses_a_reused_client_order_id_with_422(alpaca):
    assert post(alpaca, symbol="MSFT", qty=1, side="buy", client_order_id="once").ok
    again = post(alpaca, symbol="MSFT", qty=1, side="buy", client_order_id="once")
    assert (again.status_code, again.json()["message"]) == (422, "client_order_id must be unique")
    assert alpaca.client_order_ids("alpaca") == ["once", "once"]
    assert alpaca.positions("alpaca") == {"MSFT": 1.0}


def test_alpaca_unknown_orders_are_404(alpaca):
    missing = get(alpaca, "/v2/orders:by_client_order_id", client_order_id="ghost")
    assert (missing.status_code, missing.json()["message"]) == (404, "order not found")
    assert get(alpaca, "/v2/orders/00000000-0000-0000-0000-000000000000").status_code == 404


def test_alpaca_allows_shorts_and_reports_them_as_positions(alpaca, stocks):
    assert post(alpaca, symbol="IBM", qty="5", side="sell", client_order_id="short").ok
    assert post(alpaca, symbol="AAPL", qty="2", side="buy", client_order_id="long").ok
    positions = {p["symbol"]: p for p in get(alpaca, "/v2/positions").json()}
    assert (positions["IBM"]["qty"], positions["IBM"]["side"]) == ("-5", "short")
    assert (positions["AAPL"]["qty"], positions["AAPL"]["side"]) == ("2", "long")
    ibm = Decimal(repr(float(stocks.loc["IBM"]["close"].iloc[-1]))).quantize(TICK)
    assert Decimal(positions["IBM"]["market_value"]) == -5 * ibm
    assert Decimal(positions["IBM"]["avg_entry_price"]) == ibm
    assert alpaca.positions("alpaca") == {"IBM": -5.0, "AAPL": 2.0}


def test_alpaca_refuses_buys_beyond_cash_and_bad_input(alpaca):
    broke = post(alpaca, symbol="AAPL", qty="100000", side="buy", client_order_id="broke")
    assert (broke.status_code, broke.json()["message"]) == (403, "insufficient buying power")
    assert post(alpaca, symbol="AAPL", qty="0", side="buy").status_code == 422
    assert post(alpaca, symbol="AAPL", qty="1", side="buy", type="limit").status_code == 422
    assert post(alpaca, symbol="AAPL", qty="1", side="buy", time_in_force="x").status_code == 422
    assert post(alpaca, symbol="ZZZZ", qty="1", side="buy").status_code == 422
    assert alpaca.positions("alpaca") == {}


def test_alpaca_cancel_of_an_open_order_and_of_a_filled_one(stocks):
    with ReplayExchange(stocks, hold_orders=True) as ex:
        held = post(ex, symbol="AAPL", qty="1", side="buy", client_order_id="held").json()
        assert held["status"] == "new" and held["filled_avg_price"] is None
        assert [o["id"] for o in get(ex, "/v2/orders", status="open").json()] == [held["id"]]
        cancel = requests.delete(f"{ex.url}/v2/orders/{held['id']}", timeout=5)
        assert cancel.status_code == 204
        assert get(ex, f"/v2/orders/{held['id']}").json()["status"] == "canceled"
        again = requests.delete(f"{ex.url}/v2/orders/{held['id']}", timeout=5)
        assert (again.status_code, again.json()["message"]) == (422, "order is not cancelable")
        post(ex, symbol="AAPL", qty="1", side="buy", client_order_id="later")
        assert ex.release_orders("alpaca") == 1 and ex.positions("alpaca") == {"AAPL": 1.0}
        assert len(get(ex, "/v2/orders", status="all").json()) == 2


def test_alpaca_trading_routes_check_the_key_pair(alpaca):
    url = alpaca.url + "/v2/account"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = {"APCA-API-KEY-ID": "id", "APCA-API-SECRET-KEY": "nope"}
    assert requests.get(url, headers=wrong, timeout=5).status_code == 403
    assert requests.post(alpaca.url + "/v2/orders", json={}, timeout=5).status_code == 401
    assert alpaca.client_order_ids("alpaca") == []
