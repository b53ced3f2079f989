"""RestPollFeed against the replay exchange: every closed bar, through 429/5xx/timeout/truncate."""

from __future__ import annotations

import pandas as pd
from live.feeds.feed_support import as_bars, ms, wait_for

from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.http import RetryPolicy
from mlalgo.live.feeds import Feed, RestPollFeed
from mlalgo.live.feeds.rest import AlpacaBars
from mlalgo.secrets import Credentials, Secret

SYMBOLS = ("BTCUSDT", "ETHUSDT")
QUICK = RetryPolicy(max_retries=12, backoff=0.02, max_backoff=0.2, timeout=0.5)
FAULTS = FaultSpec(rate_429=0.1, rate_5xx=0.1, rate_timeout=0.05, rate_truncate=0.1,
                   retry_after=0, timeout_delay=1.0, seed=5)  # fmt: skip


def follow(ex: ReplayExchange, feed: RestPollFeed, start_ms: int, seconds: float) -> list:
    """Poll until the exchange clock has stopped and every bar from ``start_ms`` arrived."""
    last_close = ms(ex.bars.index.get_level_values("time").max()) + feed.interval_ms
    got: list = []

    def done() -> bool:
        got.extend(feed.poll(0.2))
        want = {(s, b.open_ms) for s in feed.symbols for b in as_bars(ex.served(s), s)
                if b.open_ms >= start_ms}  # fmt: skip
        return ms(ex.now()) >= last_close and want <= {(b.symbol, b.open_ms) for b in got}

    assert wait_for(done, 40, step=0)
    return got


def test_binance_polling_under_rest_faults_delivers_every_closed_bar_once(crypto):
    times = crypto.xs("BTCUSDT", level="symbol").index
    start = times[200]
    with ReplayExchange(crypto, speed=60 * 30, start=start, faults=FAULTS) as ex:
        feed = RestPollFeed(SYMBOLS, "1m", base_url=ex.url, poll_every=0.1, start_ms=ms(start),
                            retry=QUICK, seed=2)  # fmt: skip
        try:
            assert isinstance(feed, Feed)
            got = follow(ex, feed, ms(start), 40)
            expected = [b for s in SYMBOLS for b in as_bars(ex.served(s), s)]
            server = ex.stats
        finally:
            feed.close()
    for symbol in SYMBOLS:
        mine = [b for b in got if b.symbol == symbol]
        want = [b for b in expected if b.symbol == symbol and b.open_ms >= ms(start)]
        assert mine == want  # once each, in order, closed values only (never a partial bar)
    assert all(server[k] >= 1 for k in ("429", "5xx", "timeout", "truncate"))
    assert feed.stats["errors"] == 0 and feed.stats["bars"] == len(got)


def test_without_start_the_first_round_emits_the_latest_closed_bar(crypto):
    times = crypto.xs("ETHUSDT", level="symbol").index
    with ReplayExchange(crypto, speed=1e-9, start=times[150] + pd.Timedelta("20s")) as ex:
        feed = RestPollFeed(["ethusdt"], "1m", base_url=ex.url, poll_every=0.05, retry=QUICK)
        try:
            first = feed.poll(1.0)
            assert first == as_bars(ex.served("ETHUSDT"), "ETHUSDT")[-1:]
            assert first[0].open_ms == ms(times[149])  # not 150: that one is still open
            assert feed.poll(0.3) == []  # nothing new closed
            assert feed.history("ETHUSDT", ms(times[10]), 5) == as_bars(
                ex.served("ETHUSDT"), "ETHUSDT")[5:10]  # fmt: skip
        finally:
            feed.close()


def stocks_bars(sample_bars: pd.DataFrame) -> pd.DataFrame:
    return sample_bars.loc[["AAPL", "MSFT"]].loc[(slice(None), slice("2012-06-01", None)), :]


def test_alpaca_polling_with_keys_under_faults_delivers_every_bar(sample_bars):
    bars = stocks_bars(sample_bars)
    key = ("AKID", "not-a-real-secret")
    start = pd.Timestamp("2012-12-03", tz="UTC")  # the sample ends 2013-03-01: 3 s at 30 days/s
    with ReplayExchange(bars, speed=86_400 * 30, start=start, alpaca_key=key,
                        faults=FAULTS) as ex:  # fmt: skip
        creds = Credentials("alpaca", Secret(key[0]), Secret(key[1]))
        feed = RestPollFeed(["AAPL", "MSFT"], "1d", provider="alpaca", base_url=ex.url, key=creds,
                            poll_every=0.1, start_ms=ms(start), retry=QUICK, seed=4)  # fmt: skip
        try:
            got = follow(ex, feed, ms(start), 40)
            expected = {s: as_bars(ex.served(s), s) for s in ("AAPL", "MSFT")}
            history = feed.history("MSFT", ms(start), 3)
        finally:
            feed.close()
    assert len(got) == 2 * 61  # trading days from 2012-12-03 to the end of the sample
    for symbol, bars_ in expected.items():
        assert [b for b in got if b.symbol == symbol] == [
            b for b in bars_ if b.open_ms >= ms(start)
        ]
    assert history == [b for b in expected["MSFT"] if b.open_ms < ms(start)][-3:]


def test_alpaca_refusal_is_counted_not_raised(sample_bars):
    with ReplayExchange(stocks_bars(sample_bars), alpaca_key=("AKID", "right")) as ex:
        feed = RestPollFeed(["AAPL"], "1d", provider="alpaca", base_url=ex.url,
                            key=("AKID", "wrong"), poll_every=0.05, retry=QUICK)  # fmt: skip
        try:
            assert feed.poll(0.2) == []
        finally:
            feed.close()
    assert feed.stats["errors"] >= 1


def test_alpaca_bars_still_open_by_the_wall_clock_are_dropped(sample_bars):
    bars = stocks_bars(sample_bars)
    with ReplayExchange(bars) as ex:
        served = as_bars(ex.served("AAPL"), "AAPL")
        midday = (served[-1].open_ms + 43_200_000) / 1000  # halfway through the last bar
        rest = AlpacaBars(ex.url, interval="1d", wall=lambda: midday, retry=QUICK)
        try:
            assert rest.closed("AAPL", served[-5].open_ms) == served[-5:-1]
            assert rest.history("AAPL", None, 3) == served[-4:-1]
        finally:
            rest.close()
