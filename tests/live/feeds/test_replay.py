"""ReplayFeed: the bar file, delivered bar for bar as the pandas loader reads it, never ahead."""

from __future__ import annotations

import pandas as pd
import pytest
from live.feeds.feed_support import SAMPLE, ms

from mlalgo.data.bar import Bar
from mlalgo.data.sample import load_sample
from mlalgo.live.feeds import Feed, ReplayFeed
from mlalgo.live.feeds.wire import to_ms

STOCKS = SAMPLE / "stocks_daily.csv"
DAY = 86_400_000


def drain(feed: ReplayFeed) -> list[list[Bar]]:
    groups = []
    while not feed.exhausted:
        groups.append(feed.poll(0.0))
    return groups


def loader_bars(frame: pd.DataFrame) -> list[Bar]:
    """The pandas loader's bars as Bars, ordered by time then symbol as the feed delivers."""
    bars = [
        Bar(symbol, ms(t), *map(float, row))
        for (symbol, t), row in zip(frame.index, frame.to_numpy(), strict=True)
    ]
    return sorted(bars, key=lambda b: (b.open_ms, b.symbol))


def test_replay_reproduces_the_sample_exactly_as_the_pandas_loader_reads_it():
    feed = ReplayFeed(STOCKS, ["AAPL", "IBM", "MSFT"])
    groups = drain(feed)
    expected = loader_bars(load_sample(["AAPL", "IBM", "MSFT"], root=SAMPLE))
    assert [b for g in groups for b in g] == expected  # times and every float, to the bit
    assert isinstance(feed, Feed) and feed.interval_ms == DAY
    assert all(len({b.open_ms for b in g}) == 1 for g in groups)  # one timestamp per poll
    starts = [g[0].open_ms for g in groups]
    assert starts == sorted(set(starts))  # strictly increasing
    assert feed.stats["bars"] == len(expected) and feed.stats["messages"] == len(groups)
    assert feed.poll(0.0) == []  # exhausted


def test_a_file_without_a_symbol_column_matches_the_loader_too():
    feed = ReplayFeed(SAMPLE / "sp500.csv", symbol="SPX")
    got = [b for g in drain(feed) for b in g]
    assert got == loader_bars(load_sample(["SPX"], root=SAMPLE))


def test_the_window_and_history_never_reveal_the_future():
    start, end = to_ms("2005-01-03"), to_ms("2005-02-01")
    feed = ReplayFeed(STOCKS, ["AAPL", "MSFT"], start_ms=start, end_ms=end)
    before = feed.history("AAPL", 10**15, 5)  # asked before the replay began: only older bars
    assert len(before) == 5 and before[-1].open_ms < start
    assert [b.open_ms for b in before] == sorted(b.open_ms for b in before)
    first = feed.poll(0.0)
    assert {b.symbol for b in first} == {"AAPL", "MSFT"} and first[0].open_ms == start
    assert feed.history("AAPL", 10**15, 1) == [first[0]]  # revealed now, nothing later
    assert feed.history("AAPL", start, 1) == before[-1:]  # end_ms is exclusive
    rest = [b for g in drain(feed) for b in g]
    assert all(start <= b.open_ms < end for b in rest)
    assert feed.history("MSFT", 10**15, 1)[0].open_ms == rest[-1].open_ms  # up to the end only


def test_pace_spaces_timestamps_and_a_short_poll_returns_nothing():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    feed = ReplayFeed(STOCKS, ["IBM"], pace=10.0, clock=lambda: now[0], sleep=sleep)
    assert len(feed.poll(1.0)) == 1  # the first timestamp is due at once
    assert feed.poll(1.0) == [] and slept == [1.0]  # 10 s pace > 1 s timeout
    assert len(feed.poll(60.0)) == 1 and slept[-1] == pytest.approx(9.0)


def test_times_parse_as_pandas_does():
    for text in ("2000-03-01", "2024-01-01 09:30:00", "2024-01-01T09:30:00Z",
                 "2024-01-01T09:30:00.250+02:00", "1999-12-31T23:59:59-05:00"):  # fmt: skip
        assert to_ms(text) == ms(pd.to_datetime(text, utc=True)), text


def test_bad_files_and_symbols_are_named(tmp_path):
    with pytest.raises(ValueError, match="no bars for ZZZ"):
        ReplayFeed(STOCKS, ["ZZZ"]).poll(0.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,10\nnope,1,2,3,4,5\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: not a bar"):
        ReplayFeed(bad).poll(0.0)
    with pytest.raises(ValueError, match="pace must be"):
        ReplayFeed(STOCKS, pace=-1)
    with pytest.raises(ValueError, match="unknown interval"):
        ReplayFeed(STOCKS, interval="2d")
