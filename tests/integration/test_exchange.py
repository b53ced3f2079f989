"""The replay exchange over real sockets: Binance REST + WebSocket, Alpaca bars, faults, ccxt.

REST is exercised with requests, the streams with aiohttp's client, and the Binance adapter of a
third-party library (ccxt) is pointed at the loopback server to prove the wire format is real.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest
import requests

from mlalgo.bars import COLUMNS, make_bars
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.files import read_bar_file

ROOT = Path(__file__).resolve().parents[2]
STOCKS = ROOT / "data" / "sample" / "stocks_daily.csv"
DAY = 86_400_000
MINUTE = 60_000
BTC, ETH = "btcusdt@kline_1m", "ethusdt@kline_1m"


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    return read_bar_file(STOCKS)


@pytest.fixture(scope="module")
def exchange(stocks):
    """The real daily sample, static clock: every stored bar is closed and served."""
    with ReplayExchange(stocks) as ex:
        yield ex


def crypto(n: int = 400) -> pd.DataFrame:
    """Synthetic 1m BTCUSDT and ETHUSDT bars (a seeded random walk)."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    frames = []
    for base, symbol in ((40_000.0, "BTCUSDT"), (2_000.0, "ETHUSDT")):
        close = base * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[base, close[:-1]]
        wiggle = rng.uniform(0, 1e-3, (2, n))
        frame = pd.DataFrame({
            "time": times, "open": open_, "close": close, "volume": rng.uniform(1, 50, n),
            "high": np.maximum(open_, close) * (1 + wiggle[0]),
            "low": np.minimum(open_, close) * (1 - wiggle[1]),
        })  # fmt: skip
        frames.append(make_bars(frame, symbol=symbol))
    return pd.concat(frames).sort_index()


def get(ex: ReplayExchange, path: str, **params) -> requests.Response:
    return requests.get(ex.url + path, params=params, timeout=10)


def klines_frame(rows: list[list]) -> pd.DataFrame:
    """Wire klines back into floats, keyed by open time (ms)."""
    values = [[float(x) for x in row[1:6]] for row in rows]
    return pd.DataFrame(values, index=[row[0] for row in rows], columns=list(COLUMNS))


def assert_same(wire: pd.DataFrame, served: pd.DataFrame) -> None:
    """Equal to the last bit: open times in ms, and every float."""
    assert list(wire.index) == list(served.index.as_unit("ms").asi8)
    assert np.array_equal(wire.to_numpy(), served.loc[:, list(COLUMNS)].to_numpy())


def fetch_all_klines(ex: ReplayExchange, symbol: str, interval: str) -> list[list]:
    rows: list[list] = []
    start = 0
    while True:
        page = get(ex, "/api/v3/klines", symbol=symbol, interval=interval, startTime=start,
                   limit=1000).json()  # fmt: skip
        rows += page
        if len(page) < 1000:
            return rows
        start = page[-1][0] + 1


def alpaca_pages(ex: ReplayExchange, path: str, **params) -> list[dict]:
    pages, token = [], None
    while True:
        query = params | ({"page_token": token} if token else {})
        body = get(ex, path, **query).json()
        pages.append(body)
        token = body["next_page_token"]
        if token is None:
            return pages


def alpaca_frame(bars: list[dict]) -> pd.DataFrame:
    index = pd.DatetimeIndex([b["t"] for b in bars]).as_unit("ms").asi8
    values = [[b["o"], b["h"], b["l"], b["c"], b["v"]] for b in bars]
    return pd.DataFrame(values, index=list(index), columns=list(COLUMNS))


async def listen(url: str, seconds: float, send: list[dict] | None = None, **kw) -> list:
    """(type, data) of every WebSocket message within ``seconds``, after sending ``send``."""
    out: list = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, **kw) as ws:
        for msg in send or []:
            await ws.send_str(json.dumps(msg))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:  # not receive(timeout=): pings answered inside receive() restart that timer
                async with asyncio.timeout(left):
                    msg = await ws.receive()
            except TimeoutError:
                break
            data = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else msg.data
            out.append((msg.type, data))
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):  # fmt: skip
                break
    return out


def texts(messages: list) -> list[dict]:
    return [data for kind, data in messages if kind is aiohttp.WSMsgType.TEXT]


def finals(messages: list) -> list[dict]:
    return [m["k"] for m in texts(messages) if m.get("e") == "kline" and m["k"]["x"]]


# -- Binance REST ----------------------------------------------------------------------------


def test_klines_follow_the_binance_wire_format(exchange, stocks):
    rows = get(exchange, "/api/v3/klines", symbol="AAPL", interval="1d", limit=5).json()
    stored = exchange.served("AAPL").iloc[-5:]
    assert len(rows) == 5
    for row, (time_, bar) in zip(rows, stored.iterrows(), strict=True):
        assert len(row) == 12
        assert row[0] == time_.value // 1_000_000
        assert row[6] == row[0] + DAY - 1
        assert all(isinstance(x, str) for x in row[1:6] + row[7:8] + row[9:12])
        assert isinstance(row[8], int)
        assert [float(x) for x in row[1:6]] == bar.tolist()
        assert float(row[7]) == bar["close"] * bar["volume"]


def test_paging_by_start_time_reproduces_the_history_exactly(exchange, stocks):
    for symbol in ("AAPL", "MSFT"):
        rows = fetch_all_klines(exchange, symbol, "1d")
        assert len(rows) == len(stocks.loc[symbol]) > 3000
        assert_same(klines_frame(rows), exchange.served(symbol))


def test_klines_windows_limits_and_error_codes(exchange):
    served = exchange.served("IBM")
    times = served.index.as_unit("ms").asi8
    latest = get(exchange, "/api/v3/klines", symbol="IBM", interval="1d").json()
    assert [r[0] for r in latest] == list(times[-500:])  # default limit 500, most recent
    window = get(exchange, "/api/v3/klines", symbol="IBM", interval="1d",
                 startTime=times[10] - 1, endTime=times[20]).json()  # fmt: skip
    assert [r[0] for r in window] == list(times[10:21])
    before = get(exchange, "/api/v3/klines", symbol="IBM", interval="1d", endTime=times[99],
                 limit=3).json()  # fmt: skip
    assert [r[0] for r in before] == list(times[97:100])
    assert len(get(exchange, "/api/v3/klines", symbol="IBM", interval="1d", limit=1000).json())
    errors = {
        -1130: {"symbol": "IBM", "interval": "1d", "limit": 1001},
        -1120: {"symbol": "IBM", "interval": "1h"},
        -1121: {"symbol": "ibm", "interval": "1d"},
        -1102: {"interval": "1d"},
        -1100: {"symbol": "IBM", "interval": "1d", "startTime": "yesterday"},
        -1023: {"symbol": "IBM", "interval": "1d", "startTime": 10, "endTime": 5},
    }
    for code, params in errors.items():
        resp = get(exchange, "/api/v3/klines", **params)
        assert (resp.status_code, resp.json()["code"]) == (400, code), params


def test_ping_time_and_exchange_info(exchange):
    assert get(exchange, "/api/v3/ping").json() == {}
    now_ms = exchange.now().value // 1_000_000
    assert get(exchange, "/api/v3/time").json() == {"serverTime": now_ms}
    info = get(exchange, "/api/v3/exchangeInfo").json()
    assert info["timezone"] == "UTC" and info["exchangeFilters"] == []
    weight = info["rateLimits"][0]
    assert (weight["rateLimitType"], weight["interval"], weight["limit"]) == (
        "REQUEST_WEIGHT", "MINUTE", 6000)  # fmt: skip
    by_name = {s["symbol"]: s for s in info["symbols"]}
    assert sorted(by_name) == ["AAPL", "IBM", "MSFT"]
    aapl = by_name["AAPL"]
    assert (aapl["baseAsset"], aapl["quoteAsset"], aapl["status"]) == ("AAPL", "USD", "TRADING")
    assert aapl["isSpotTradingAllowed"] and not aapl["isMarginTradingAllowed"]
    assert aapl["permissionSets"] == [["SPOT"]]
    assert {"PRICE_FILTER", "LOT_SIZE"} <= {f["filterType"] for f in aapl["filters"]}
    for key in ("baseAssetPrecision", "quotePrecision", "quoteAssetPrecision", "orderTypes",
                "baseCommissionPrecision", "quoteCommissionPrecision", "icebergAllowed",
                "ocoAllowed", "defaultSelfTradePreventionMode",
                "allowedSelfTradePreventionModes"):  # fmt: skip
        assert key in aapl
    with ReplayExchange(crypto(50)) as ex:
        btc = get(ex, "/api/v3/exchangeInfo", symbol="BTCUSDT").json()["symbols"][0]
        assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")


def test_request_weight_header_429_then_418_ban(stocks):
    with ReplayExchange(stocks, weight_limit=10, faults=FaultSpec(retry_after=1)) as ex:
        used = [get(ex, "/api/v3/klines", symbol="AAPL", interval="1d", limit=1)
                .headers["X-MBX-USED-WEIGHT-1M"] for _ in range(5)]  # fmt: skip
        assert used == ["2", "4", "6", "8", "10"]
        limited = get(ex, "/api/v3/ping")
        assert limited.status_code == 429 and limited.json()["code"] == -1003
        assert limited.headers["Retry-After"] == "1"
        banned = get(ex, "/api/v3/ping")  # did not wait Retry-After
        assert banned.status_code == 418 and banned.headers["Retry-After"] == "2"
        assert ex.stats["rate_limited"] == 1 and ex.stats["banned"] == 1


# -- Alpaca ----------------------------------------------------------------------------------


def test_alpaca_single_symbol_pages_reproduce_the_data(exchange):
    pages = alpaca_pages(exchange, "/v2/stocks/AAPL/bars", timeframe="1Day", limit=1000,
                         start="2000-01-01T00:00:00Z", adjustment="all", feed="sip")  # fmt: skip
    assert len(pages) == 4 and all(p["symbol"] == "AAPL" for p in pages)
    token = pages[0]["next_page_token"]
    assert isinstance(token, str) and base64.urlsafe_b64decode(token)
    bars = [b for p in pages for b in p["bars"]]
    assert bars[0]["t"] == "2000-03-01T00:00:00Z" and isinstance(bars[0]["n"], int)
    assert_same(alpaca_frame(bars), exchange.served("AAPL"))
    newest = get(exchange, "/v2/stocks/AAPL/bars", timeframe="1Day", limit=2, sort="desc").json()
    assert [b["t"] for b in newest["bars"]] == [
        f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in exchange.served("AAPL").index[::-1][:2]
    ]


def test_alpaca_multi_symbol_pages_sort_by_symbol_then_time(exchange):
    pages = alpaca_pages(exchange, "/v2/stocks/bars", symbols="MSFT,AAPL,IBM",
                         timeframe="1Day", limit=2500)  # fmt: skip
    assert [sum(len(v) for v in p["bars"].values()) for p in pages] == [2500, 2500, 2500, 2310]
    merged: dict[str, list] = {}
    for page in pages:
        for symbol, bars in page["bars"].items():
            merged.setdefault(symbol, []).extend(bars)
    assert list(merged) == ["AAPL", "IBM", "MSFT"]
    for symbol, bars in merged.items():
        assert_same(alpaca_frame(bars), exchange.served(symbol))


def test_alpaca_auth_and_bad_timeframe(stocks):
    with ReplayExchange(stocks, alpaca_key=("key-id", "s3cret")) as ex:
        url = ex.url + "/v2/stocks/AAPL/bars"
        params = {"timeframe": "1Day", "limit": 1}
        assert requests.get(url, params=params, timeout=5).status_code == 401
        wrong = {"APCA-API-KEY-ID": "key-id", "APCA-API-SECRET-KEY": "nope"}
        resp = requests.get(url, params=params, headers=wrong, timeout=5)
        assert (resp.status_code, resp.json()) == (403, {"message": "forbidden."})
        right = {"APCA-API-KEY-ID": "key-id", "APCA-API-SECRET-KEY": "s3cret"}
        assert len(requests.get(url, params=params, headers=right, timeout=5).json()["bars"]) == 1
        bad = requests.get(url, params={"timeframe": "1Hour"}, headers=right, timeout=5)
        assert (bad.status_code, bad.json()) == (422, {"message": "invalid timeframe"})


# -- REST faults -----------------------------------------------------------------------------


def test_each_rest_fault_kind_at_rate_one(stocks, exchange):
    params = {"symbol": "AAPL", "interval": "1d", "limit": 50}
    clean = get(exchange, "/api/v3/klines", **params)
    with ReplayExchange(stocks, faults=FaultSpec(rate_429=1.0, retry_after=3)) as ex:
        resp = get(ex, "/api/v3/klines", **params)
        assert (resp.status_code, resp.headers["Retry-After"]) == (429, "3")
        alpaca = get(ex, "/v2/stocks/bars", symbols="AAPL", timeframe="1Day")
        assert alpaca.status_code == 429 and "Retry-After" in alpaca.headers
    with ReplayExchange(stocks, faults=FaultSpec(rate_5xx=1.0)) as ex:
        statuses = {get(ex, "/api/v3/ping").status_code for _ in range(20)}
        assert statuses <= {500, 502, 503} and len(statuses) > 1
    with ReplayExchange(stocks, faults=FaultSpec(rate_timeout=1.0, timeout_delay=0.5)) as ex:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(ex.url + "/api/v3/klines", params=params, timeout=0.2)
        started = time.monotonic()
        late = get(ex, "/api/v3/klines", **params)
        assert time.monotonic() - started >= 0.5 and late.json() == clean.json()
    with ReplayExchange(stocks, faults=FaultSpec(rate_truncate=1.0)) as ex:
        cut = get(ex, "/api/v3/klines", **params)
        assert cut.status_code == 200 and cut.headers["Content-Type"].startswith("application/json")
        assert clean.content.startswith(cut.content) and len(cut.content) == len(clean.content) // 2
        with pytest.raises(ValueError):
            cut.json()
        assert ex.stats["truncate"] == ex.stats["requests"] == 1


def test_a_fault_mix_is_reproducible_for_a_seed(stocks):
    def run(seed: int) -> tuple[list[int], dict[str, int]]:
        spec = FaultSpec.uniform(0.1, seed=seed, timeout_delay=0.01, retry_after=0)
        with ReplayExchange(stocks, faults=spec) as ex:
            codes = [get(ex, "/api/v3/klines", symbol="IBM", interval="1d", limit=20).status_code
                     for _ in range(80)]  # fmt: skip
            return codes, ex.stats

    first, again, other = run(7), run(7), run(8)
    assert first == again and first != other
    stats = first[1]
    assert stats["requests"] == 80 and all(stats[k] > 0 for k in ("429", "5xx", "truncate"))


# -- the replay clock ------------------------------------------------------------------------


def test_rest_shows_the_bar_in_progress_and_served_excludes_it():
    bars = crypto()
    start = bars.index.get_level_values("time")[250] + pd.Timedelta(seconds=30)
    with ReplayExchange(bars, speed=1e-9, start=start) as ex:  # the clock all but stands still
        assert ex.now() == start and ex.interval == "1m"
        server_time = get(ex, "/api/v3/time").json()["serverTime"]
        rows = get(ex, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=3).json()
        last = rows[-1]
        assert last[0] <= server_time <= last[6]  # in progress: closeTime >= serverTime
        served = ex.served("BTCUSDT")
        assert len(served) == 250 and served.index[-1] < pd.Timestamp(last[0], unit="ms", tz="UTC")
        assert_same(klines_frame(rows[:-1]), served.iloc[-2:])
        stored = bars.loc["BTCUSDT"].iloc[250]
        half = stored["open"] + 0.5 * (stored["close"] - stored["open"])
        assert [float(x) for x in last[1:6]] == [stored["open"], max(stored["open"], half),
                                                 min(stored["open"], half), half,
                                                 stored["volume"] * 0.5]  # fmt: skip
        alpaca = get(ex, "/v2/stocks/BTCUSDT/bars", timeframe="1Min", limit=10000).json()
        assert_same(alpaca_frame(alpaca["bars"]), served)  # Alpaca: completed bars only


def test_a_running_clock_advances_and_stops_at_the_last_close():
    bars = crypto(210)
    with ReplayExchange(bars, speed=60 * 50) as ex:  # 50 bars per second
        start = bars.index.get_level_values("time")[200]  # default: 200 bars in
        assert start <= ex.now() < start + pd.Timedelta(minutes=5)
        time.sleep(0.3)
        assert ex.now() == bars.index.get_level_values("time")[-1] + pd.Timedelta(minutes=1)
        assert_same(klines_frame(fetch_all_klines(ex, "ETHUSDT", "1m")), bars.loc["ETHUSDT"])


# -- Binance WebSocket -----------------------------------------------------------------------


def test_raw_stream_sends_updates_then_the_final_stored_bar():
    bars = crypto()
    with ReplayExchange(bars, speed=600, updates_per_bar=3) as ex:  # a bar every 0.1 s
        messages = texts(asyncio.run(listen(f"{ex.ws_url}/ws/{BTC}", 1.2)))
    stored = bars.loc["BTCUSDT"]
    times = list(stored.index.as_unit("ms").asi8)
    first_final = next(i for i, m in enumerate(messages) if m["k"]["x"])
    run = messages[first_final + 1 :]
    assert len(run) >= 9
    for j, msg in enumerate(run[: len(run) // 3 * 3]):
        k = msg["k"]
        assert set(msg) == {"e", "E", "s", "k"} and (msg["e"], msg["s"]) == ("kline", "BTCUSDT")
        assert set(k) == set("tTsifLochlvnxqVQB") and (k["s"], k["i"]) == ("BTCUSDT", "1m")
        assert k["T"] == k["t"] + MINUTE - 1 and isinstance(k["n"], int)
        assert all(isinstance(k[f], str) for f in "ochlvqVQB")
        bar = stored.iloc[times.index(k["t"])]
        fraction = (j % 3 + 1) / 3
        assert k["x"] is (fraction == 1)
        expected = bar["open"] + fraction * (bar["close"] - bar["open"])
        assert float(k["c"]) == (bar["close"] if k["x"] else expected)
        assert float(k["o"]) == bar["open"]
        if k["x"]:
            assert [float(k[f]) for f in "ohlcv"] == bar.tolist()
    final_times = [m["k"]["t"] for m in messages if m["k"]["x"]]
    assert np.all(np.diff(final_times) == MINUTE)


def test_combined_stream_wraps_messages_with_the_stream_name():
    with ReplayExchange(crypto(), speed=600) as ex:
        messages = texts(asyncio.run(listen(f"{ex.ws_url}/stream?streams={BTC}/{ETH}", 0.6)))
    assert {m["stream"] for m in messages} == {BTC, ETH}
    for m in messages:
        assert set(m) == {"stream", "data"}
        assert m["data"]["s"] == m["stream"].split("@")[0].upper()


def test_live_subscribe_unsubscribe_and_list():
    requests_ = [
        {"method": "SUBSCRIBE", "params": [BTC, ETH], "id": 1},
        {"method": "UNSUBSCRIBE", "params": [ETH], "id": 2},
        {"method": "LIST_SUBSCRIPTIONS", "id": 3},
        {"method": "SUBSCRIBE", "params": ["dogeusdt@kline_1m"], "id": 4},
    ]
    with ReplayExchange(crypto(), speed=600) as ex:
        messages = texts(asyncio.run(listen(f"{ex.ws_url}/ws", 0.5, send=requests_)))
    replies = {m["id"]: m for m in messages if "id" in m}
    assert replies[1] == {"result": None, "id": 1}
    assert replies[2] == {"result": None, "id": 2}
    assert replies[3] == {"result": [BTC], "id": 3}
    assert replies[4]["error"]["code"] == 2
    assert any(m.get("s") == "BTCUSDT" for m in messages)
    with ReplayExchange(crypto(50)) as ex, pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(listen(f"{ex.ws_url}/ws/BTCUSDT@kline_1m", 0.1))  # symbols are lower case


def test_server_shutdown_after_max_connection_seconds():
    with ReplayExchange(crypto(), max_connection_seconds=0.4) as ex:
        messages = asyncio.run(listen(f"{ex.ws_url}/ws/{BTC}", 3))
    assert messages[0][0] is aiohttp.WSMsgType.TEXT
    assert messages[0][1]["e"] == "serverShutdown" and isinstance(messages[0][1]["E"], int)
    assert messages[-1][0] is aiohttp.WSMsgType.CLOSE


def test_static_stream_is_quiet_but_pings_and_closes_without_pongs():
    with ReplayExchange(crypto(), ping_interval=0.1) as ex:
        messages = asyncio.run(listen(f"{ex.ws_url}/ws/{BTC}", 2, autoping=False))
    kinds = [kind for kind, _ in messages]
    assert aiohttp.WSMsgType.TEXT not in kinds  # static: everything already closed
    assert kinds.count(aiohttp.WSMsgType.PING) >= 2
    assert kinds[-1] is aiohttp.WSMsgType.CLOSE  # no pong within 3 * ping_interval


def test_pings_arrive_and_answered_pings_keep_the_connection():
    with ReplayExchange(crypto(), ping_interval=0.1) as ex:
        messages = asyncio.run(listen(f"{ex.ws_url}/ws/{BTC}", 0.8))  # autoping answers
    assert messages == []  # autoping hides the pings; nothing closed the connection
    assert ex.stats["ws_connections"] == 1


@pytest.mark.parametrize("kind", ["drop", "duplicate", "reorder"])
def test_websocket_faults_at_rate_one(kind):
    spec = FaultSpec(**{f"rate_{kind}": 1.0})
    with ReplayExchange(crypto(), speed=600, faults=spec) as ex:
        messages = asyncio.run(listen(f"{ex.ws_url}/ws/{BTC}", 1.0))
        assert ex.stats[kind] >= 1
    got = [k["t"] for k in finals(messages)]
    if kind == "drop":
        assert got == [] and messages[-1][0] is not aiohttp.WSMsgType.CLOSE  # no close frame
        assert messages[-1][0] in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    elif kind == "duplicate":
        assert len(got) >= 4 and got[::2] == got[1::2]
    else:
        assert len(got) >= 4 and np.all(np.diff(sorted(got)) == MINUTE)  # none lost
        pairs = len(got) // 2 * 2
        assert got[0:pairs:2] == [t + MINUTE for t in got[1:pairs:2]]  # bar i+1 before bar i


# -- ccxt ------------------------------------------------------------------------------------


def test_ccxt_binance_fetches_exactly_the_stored_bars(exchange):
    ccxt = pytest.importorskip("ccxt", reason="ccxt is not installed (pip install ccxt)")
    ex = ccxt.binance({"enableRateLimit": False, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False,
        "adjustForTimeDifference": False}})  # fmt: skip
    for key, url in ex.urls["api"].items():
        if isinstance(url, str):
            ex.urls["api"][key] = "/".join([exchange.url, *url.split("/")[3:]])
    ex.load_markets()
    assert {"AAPL/USD", "IBM/USD", "MSFT/USD"} <= set(ex.markets)
    served = exchange.served("AAPL")
    since = int(served.index[100].value // 1_000_000)
    ohlcv = ex.fetch_ohlcv("AAPL/USD", "1d", since, 50)
    wire = pd.DataFrame([r[1:] for r in ohlcv], index=[r[0] for r in ohlcv], columns=list(COLUMNS))
    assert_same(wire, served.iloc[100:150])


# -- the fault spec and the blocking server --------------------------------------------------


def test_fault_spec_parse():
    text = ("429=0.05,5xx=0.05,timeout=0.02,truncate=0.02,drop=0.01,duplicate=0.05,"
            "reorder=0.05,retry_after=0,timeout_delay=1,seed=7")  # fmt: skip
    spec = FaultSpec.parse(text)
    assert spec == FaultSpec(0.05, 0.05, 0.02, 0.02, 0.01, 0.05, 0.05, 0, 1.0, 7)
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec.parse("none") == FaultSpec.parse("") == FaultSpec()
    assert not FaultSpec().any() and FaultSpec.uniform(0.1).any()
    assert FaultSpec.parse("all=0.1,drop=0") == FaultSpec.uniform(0.1, rate_drop=0)
    with pytest.raises(ValueError, match=r"'lag=0\.1'.*valid names: 429, 5xx"):
        FaultSpec.parse("429=0.1,lag=0.1")
    with pytest.raises(ValueError, match=r"'5xx=1\.5'.*\[0, 1\].*valid names"):
        FaultSpec.parse("5xx=1.5")
    with pytest.raises(ValueError, match="not a float"):
        FaultSpec.parse("drop=often")


def test_serve_runs_in_a_process_until_sigterm():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = ("import logging; logging.basicConfig(level=logging.INFO); "
            "from mlalgo.data.exchange import FaultSpec, serve; "
            f"serve({str(STOCKS)!r}, port={port}, speed=None, faults=FaultSpec())")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert resp.json() == {}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert f"http://127.0.0.1:{port}" in err and "stopping" in err
    finally:
        if proc.poll() is None:
            proc.kill()
