"""BinanceWsFeed against the replay exchange over real sockets: faults, reconnects, junk frames."""

from __future__ import annotations

import json

import pandas as pd
from live.feeds.feed_support import MINUTE, as_bars, junk_server, ms, wait_for

from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.live.feeds import BinanceWsFeed, Feed

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST = {"backoff": 0.05, "max_backoff": 0.5}


def expected_since(ex: ReplayExchange, start_ms: int) -> dict[tuple[str, int], object]:
    """Every bar the exchange has closed from ``start_ms`` on, keyed by (symbol, open_ms)."""
    out = {}
    for symbol in SYMBOLS:
        for bar in as_bars(ex.served(symbol), symbol):
            if bar.open_ms >= start_ms:
                out[(bar.symbol, bar.open_ms)] = bar
    return out


def collect(feed: BinanceWsFeed, into: dict, seconds: float) -> None:
    """Poll for ``seconds`` (bounded), deduping by (symbol, open_ms)."""
    wait_for(lambda: [into.setdefault((b.symbol, b.open_ms), b) for b in feed.poll(0.1)] and False,
             seconds, step=0)  # fmt: skip


def test_a_faulty_accelerated_session_delivers_every_closed_bar(crypto):
    times = crypto.xs("BTCUSDT", level="symbol").index
    start, last_close = times[200], ms(times[-1]) + MINUTE  # 100 bars at 20 bars/s: 5 s
    faults = FaultSpec(rate_drop=0.03, rate_duplicate=0.1, rate_reorder=0.1, seed=3)
    with ReplayExchange(crypto, speed=60 * 20, start=start, faults=faults,
                        max_connection_seconds=1.5) as ex:  # fmt: skip
        feed = BinanceWsFeed(SYMBOLS, "1m", ws_url=ex.ws_url, base_url=ex.url,
                             start_ms=ms(start), seed=1, **FAST)  # fmt: skip
        got: dict = {}
        arrivals: list = []
        try:
            assert isinstance(feed, Feed)

            def done() -> bool:
                bars = feed.poll(0.1)
                arrivals.extend(bars)
                got.update({(b.symbol, b.open_ms): b for b in bars})
                return ms(ex.now()) >= last_close and set(expected_since(ex, ms(start))) <= set(got)

            assert wait_for(done, 40, step=0)
            expected = expected_since(ex, ms(start))
            server = ex.stats
        finally:
            feed.close()
    assert set(got) == set(expected) and len(expected) == 2 * 100
    assert all(got[key] == bar for key, bar in expected.items())  # the closed values, exactly
    assert server["drop"] >= 1 and server["duplicate"] >= 1 and server["reorder"] >= 1
    s = feed.stats
    assert s["reconnects"] >= server["drop"] and s["backfilled"] >= 1
    assert s["duplicates"] >= 1 and s["out_of_order"] >= 1 and s["malformed"] == 0
    assert s["bars"] == len(arrivals) and s["in_progress"] > 0
    for symbol in SYMBOLS:  # each symbol's first arrival of a bar comes in time order
        seen, order = set(), []
        for b in arrivals:
            if b.symbol == symbol and b.open_ms not in seen:
                seen.add(b.open_ms)
                order.append(b.open_ms)
        assert order == sorted(order)


def test_history_comes_over_rest_and_excludes_the_bar_in_progress(crypto):
    times = crypto.xs("ETHUSDT", level="symbol").index
    with ReplayExchange(crypto, speed=1e-9, start=times[100] + pd.Timedelta("30s")) as ex:
        feed = BinanceWsFeed(["ethusdt"], "1m", ws_url=ex.ws_url, base_url=ex.url)
        try:
            bars = feed.history("ETHUSDT", 10**15, 30)
            served = as_bars(ex.served("ETHUSDT"), "ETHUSDT")
            assert bars == served[-30:] and bars[-1].open_ms == ms(times[99])
            assert feed.history("ETHUSDT", ms(times[50]), 1500) == served[:50]
        finally:
            feed.close()


def kline(symbol: str, open_ms: int, *, closed: bool = True, **override: object) -> dict:
    t = open_ms
    k = {"t": t, "T": t + MINUTE - 1, "s": symbol, "i": "1m", "o": "10.0", "h": "11.0",
         "l": "9.5", "c": "10.5", "v": "3.0", "x": closed} | override  # fmt: skip
    return {"e": "kline", "E": t + MINUTE, "s": symbol, "k": k}


def wrap(payload: dict) -> str:
    return json.dumps({"stream": "btcusdt@kline_1m", "data": payload})


def test_malformed_frames_are_counted_and_logged_never_raised(caplog):
    t0 = 1_700_000_040_000
    frames: list[str | bytes] = [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"result": None, "id": 1}),  # a control reply: ignored, not malformed
        wrap({"e": "trade", "s": "BTCUSDT"}),
        wrap({"e": "kline", "s": "BTCUSDT"}),  # no k
        wrap(kline("BTCUSDT", t0, o="abc")),
        wrap(kline("BTCUSDT", t0, t="1700000040000")),  # open time as a string
        wrap(kline("BTCUSDT", t0, x="true")),
        wrap(kline("DOGEUSDT", t0)),  # not subscribed
        wrap(kline("BTCUSDT", t0, i="5m")),
        b"\x00\x01binary",
        wrap(kline("BTCUSDT", t0, closed=False)),  # in progress: skipped, not malformed
        wrap(kline("BTCUSDT", t0)),
        json.dumps(kline("BTCUSDT", t0 + MINUTE)),  # raw (unwrapped) payloads are read too
        wrap(kline("BTCUSDT", t0 + MINUTE)),  # a duplicate: passed on, counted
    ]
    with junk_server(frames) as url:
        feed = BinanceWsFeed(["BTCUSDT"], "1m", ws_url=url, base_url="http://127.0.0.1:9", **FAST)
        got: list = []
        try:
            assert wait_for(lambda: got.extend(feed.poll(0.1)) or len(got) >= 3, 20, step=0)
        finally:
            feed.close()
    assert [(b.symbol, b.open_ms) for b in got] == [
        ("BTCUSDT", t0),
        *[("BTCUSDT", t0 + MINUTE)] * 2,
    ]
    assert (got[0].open, got[0].high, got[0].low, got[0].close, got[0].volume) == (
        10.0, 11.0, 9.5, 10.5, 3.0)  # fmt: skip
    s = feed.stats
    assert s["malformed"] == 10 and s["in_progress"] == 1 and s["duplicates"] == 1
    assert s["messages"] == len(frames) and s["errors"] == 0 and s["reconnects"] == 0
    assert "malformed message" in caplog.text
