"""make_feed: each kind builds its feed; a bad kind or option is named in the error."""

from __future__ import annotations

import pytest
from live.feeds.feed_support import SAMPLE

from mlalgo.live.feeds import BinanceWsFeed, ReplayFeed, RestPollFeed, make_feed


def test_each_kind_builds_its_feed_without_touching_the_network():
    replay = make_feed("replay", symbols=["AAPL"], interval="1d", path=SAMPLE / "stocks_daily.csv",
                       pace=0.5)  # fmt: skip
    ws = make_feed("binance-ws", symbols=["BTCUSDT"], interval="1m", ws_url="ws://127.0.0.1:9",
                   base_url="http://127.0.0.1:9", start_ms=0)  # fmt: skip
    poll = make_feed("rest-poll", symbols=["AAPL"], interval="1d", provider="alpaca",
                     key=("id", "secret"), poll_every=5)  # fmt: skip
    assert isinstance(replay, ReplayFeed) and replay.pace == 0.5
    assert isinstance(ws, BinanceWsFeed) and ws.url.endswith("/stream?streams=btcusdt@kline_1m")
    assert isinstance(poll, RestPollFeed) and poll.provider == "alpaca" and poll.poll_every == 5
    assert replay.interval_ms == 86_400_000 and ws.interval_ms == 60_000
    for feed in (replay, ws, poll):
        feed.close()


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("kafka", {}, "feed kind 'kafka' is unknown; use one of replay, binance-ws, rest-poll"),
        ("replay", {}, "needs path="),
        ("replay", {"path": "x.csv", "ws_url": "ws://h"}, "'replay' does not use ws_url"),
        ("binance-ws", {"path": "x.csv", "poll_every": 1}, "does not use path, poll_every"),
        ("rest-poll", {"ws_url": "ws://h"}, "'rest-poll' does not use ws_url"),
        ("rest-poll", {"provider": "kraken"}, "provider 'kraken' is not supported"),
        ("rest-poll", {"poll_every": 0}, "poll_every must be > 0"),
        ("rest-poll", {"interval": "2d"}, "unknown interval '2d'"),
        ("rest-poll", {"symbols": "BTCUSDT"}, "symbols must be a non-empty list"),
        ("binance-ws", {"symbols": []}, "symbols must be a non-empty list"),
    ],
)
def test_bad_options_are_named(kind, options, message):
    args = {"symbols": ["BTCUSDT"], "interval": "1m"} | options
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_feed(kind, **args)
