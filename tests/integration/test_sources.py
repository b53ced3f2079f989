"""Every network source against the replay exchange, over real sockets, with faults on.

Done means: at a 10 % fault rate a fetch still ends with a complete store equal to the served
data, to the last float.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import make_bars
from mlalgo.data.alpaca import AlpacaBars
from mlalgo.data.binance import BinanceREST
from mlalgo.data.binance_ws import BinanceStream
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.exchange.faults import REST_KINDS
from mlalgo.data.files import read_bar_file
from mlalgo.data.http import RetryPolicy, SourceError
from mlalgo.data.store import BarStore, update
from mlalgo.secrets import Credentials, Secret

ROOT = Path(__file__).resolve().parents[2]
STOCKS = ROOT / "data" / "sample" / "stocks_daily.csv"
FAST = RetryPolicy(max_retries=12, backoff=0.005, max_backoff=0.05, timeout=0.5)
REST_FAULTS = dict(
    rate_429=0.1,
    rate_5xx=0.1,
    rate_timeout=0.1,
    rate_truncate=0.1,
    retry_after=0,
    timeout_delay=1.0,
    seed=11,
)
START, END = pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2014-01-01", tz="UTC")


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    return read_bar_file(STOCKS)


def same_bars(got: pd.DataFrame, served: pd.DataFrame) -> None:
    """Equal times and values, exactly (the wire must not lose a float)."""
    got = got.droplevel("symbol") if "symbol" in got.index.names else got
    served = served.droplevel("symbol") if "symbol" in served.index.names else served
    assert got.index.equals(served.index)
    np.testing.assert_array_equal(got.to_numpy(), served[got.columns].to_numpy())


def test_binance_rest_pages_through_the_whole_history(stocks: pd.DataFrame) -> None:
    with ReplayExchange(stocks, interval="1d") as ex:
        src = BinanceREST(ex.url, retry=FAST, limit=500)
        bars = src.fetch("AAPL", "1d", START, END)

        same_bars(bars, ex.served("AAPL"))
        assert ex.stats["requests"] >= len(bars) // 500


def test_binance_rest_with_ten_percent_faults_fills_the_store_exactly(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    store = BarStore(tmp_path / "bars")
    with ReplayExchange(stocks, interval="1d", faults=FaultSpec(**REST_FAULTS)) as ex:
        for symbol in ("AAPL", "MSFT"):
            update(
                store,
                BinanceREST(ex.url, retry=FAST, limit=300, seed=1),
                symbol,
                "1d",
                START,
                END,
                progress=False,
            )
            same_bars(store.read("binance", symbol, "1d"), ex.served(symbol))
        faults = sum(ex.stats.get(kind, 0) for kind in REST_KINDS)
    assert faults > 0, "the faults must actually have happened"


def test_an_unknown_symbol_is_a_clear_error_not_a_retry_loop(stocks: pd.DataFrame) -> None:
    with (
        ReplayExchange(stocks, interval="1d") as ex,
        pytest.raises(SourceError, match=r"Invalid symbol.*-1121"),
    ):
        BinanceREST(ex.url, retry=FAST).fetch("NOPE", "1d", START, END)


def test_incremental_fetch_downloads_only_what_is_missing(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    store = BarStore(tmp_path / "bars")
    mid = pd.Timestamp("2006-06-30", tz="UTC")
    with ReplayExchange(stocks, interval="1d") as ex:
        src = BinanceREST(ex.url, retry=FAST)
        first = update(
            store, src, "IBM", "1d", pd.Timestamp("2003-01-01", tz="UTC"), mid, progress=False
        )
        second = update(store, src, "IBM", "1d", START, END, progress=False)
        third = update(store, src, "IBM", "1d", START, END, progress=False)
        served = ex.served("IBM")

    in_first = served.loc["2003-01-01":"2006-06-30"]
    assert first.new_rows == len(in_first)
    assert second.new_rows == len(served) - len(in_first)
    assert third.new_rows == 0
    same_bars(store.read("binance", "IBM", "1d"), served)


def test_a_failed_fetch_leaves_the_store_as_it_was_and_a_rerun_completes_it(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    store = BarStore(tmp_path / "bars")
    mid = pd.Timestamp("2005-12-31", tz="UTC")
    with ReplayExchange(stocks, interval="1d") as ex:
        update(store, BinanceREST(ex.url, retry=FAST), "MSFT", "1d", START, mid, progress=False)
    path = store.path("binance", "MSFT", "1d")
    before = path.read_bytes()

    broken = FaultSpec(rate_5xx=1.0, seed=3)
    with ReplayExchange(stocks, interval="1d", faults=broken) as ex:
        few = RetryPolicy(max_retries=2, backoff=0.001, timeout=0.5)
        with pytest.raises(SourceError, match="failed 3 times"):
            update(store, BinanceREST(ex.url, retry=few), "MSFT", "1d", START, END, progress=False)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    with ReplayExchange(stocks, interval="1d") as ex:
        update(store, BinanceREST(ex.url, retry=FAST), "MSFT", "1d", START, END, progress=False)
        same_bars(store.read("binance", "MSFT", "1d"), ex.served("MSFT"))


KEY, SECRET = "PKREPLAYKEY0001", "replay-secret-value-0001"


def test_alpaca_with_faults_and_page_tokens_fills_the_store_exactly(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    store = BarStore(tmp_path / "bars")
    creds = Credentials("alpaca", Secret(KEY), Secret(SECRET))
    with ReplayExchange(
        stocks, interval="1d", alpaca_key=(KEY, SECRET), faults=FaultSpec(**REST_FAULTS)
    ) as ex:
        src = AlpacaBars(creds, ex.url, limit=700, retry=FAST, seed=2)
        update(store, src, "MSFT", "1d", START, END, progress=False)
        same_bars(store.read("alpaca", "MSFT", "1d"), ex.served("MSFT"))


def test_alpaca_with_a_wrong_key_says_so_without_showing_it(stocks: pd.DataFrame) -> None:
    wrong = Credentials("alpaca", Secret(KEY), Secret("not-the-secret-0001"))
    with (
        ReplayExchange(stocks, interval="1d", alpaca_key=(KEY, SECRET)) as ex,
        pytest.raises(SourceError, match="HTTP 403") as err,
    ):
        AlpacaBars(wrong, ex.url, retry=FAST).fetch("MSFT", "1d", START, END)
    assert "not-the-secret-0001" not in str(err.value) and KEY not in str(err.value)


def test_ccxt_fetches_the_same_bars_through_the_client_library(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("ccxt", reason="the ccxt extra is not installed")
    from mlalgo.data.ccxt_source import CcxtSource

    store = BarStore(tmp_path / "bars")
    with ReplayExchange(stocks, interval="1d", faults=FaultSpec(**REST_FAULTS)) as ex:
        src = CcxtSource("binance", ex.url, retry=FAST, limit=800, seed=3)
        update(store, src, "AAPL", "1d", START, END, progress=False)
        same_bars(store.read("ccxt-binance", "AAPL", "1d"), ex.served("AAPL"))


def minute_bars(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A synthetic BTCUSDT 1m random walk: the stream needs intraday bars and a moving clock."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    )
    return make_bars(frame, symbol="BTCUSDT")


async def collect(stream: BinanceStream, n: int, timeout: float) -> list:
    out = []

    async def run() -> None:
        async for bar in stream.stream(["BTCUSDT"], "1m"):
            out.append(bar)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


def test_websocket_stream_survives_faults_and_emits_every_bar_once_in_order() -> None:
    bars = minute_bars()
    faults = FaultSpec(rate_drop=0.1, rate_duplicate=0.1, rate_reorder=0.1, seed=4)
    with ReplayExchange(bars, interval="1m", speed=60 * 40, faults=faults, ping_interval=0.5) as ex:
        stream = BinanceStream(
            ex.ws_url,
            BinanceREST(ex.url, retry=FAST),
            reconnect=RetryPolicy(backoff=0.01, max_backoff=0.1),
            seed=1,
        )
        got = asyncio.run(collect(stream, 60, timeout=60))
        served = ex.served("BTCUSDT")

    opens = np.array([b.open_ms for b in got])
    assert (np.diff(opens) == 60_000).all(), "every bar once, in order, no gaps"
    for bar in got:
        row = served.loc[pd.Timestamp(bar.open_ms, unit="ms", tz="UTC")]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == tuple(row)
    assert stream.stats["connects"] >= 2, "drops must have forced reconnects"
    assert stream.stats["duplicates"] + stream.stats["out_of_order"] > 0


def test_websocket_stream_reconnects_after_the_server_limit_and_backfills() -> None:
    bars = minute_bars(seed=1)
    with ReplayExchange(bars, interval="1m", speed=60 * 40, max_connection_seconds=1.0) as ex:
        stream = BinanceStream(
            ex.ws_url,
            BinanceREST(ex.url, retry=FAST),
            reconnect=RetryPolicy(backoff=0.3, max_backoff=0.5),
            seed=2,
        )
        got = asyncio.run(collect(stream, 100, timeout=60))

    assert stream.stats["connects"] >= 2
    assert stream.stats["backfilled"] > 0
    assert (np.diff([b.open_ms for b in got]) == 60_000).all()


def test_the_pipeline_fetch_stage_over_the_wire_equals_the_sample(
    stocks: pd.DataFrame, tmp_path: Path
) -> None:
    from mlalgo.config import load_pipeline
    from mlalgo.pipeline import data_hash, load_bars

    train = ROOT / "pipelines" / "train.yaml"
    local, _ = load_bars(load_pipeline(train, [f"stages.fetch.path={ROOT / 'data' / 'sample'}"]))
    with ReplayExchange(stocks, interval="1d") as ex:
        cfg = load_pipeline(
            train,
            [
                "stages.fetch.source=binance",
                f"stages.fetch.base_url={ex.url}",
                f"stages.fetch.store={tmp_path / 'bars'}",
            ],
        )
        remote, _ = load_bars(cfg)

    pd.testing.assert_frame_equal(remote, local)
    assert data_hash(remote) == data_hash(local)


def test_websocket_client_answers_pings_so_a_quiet_connection_stays_open() -> None:
    """The server closes a connection that leaves its pings unanswered for 3 ping intervals."""
    bars = minute_bars(seed=2)
    with ReplayExchange(bars, interval="1m", speed=60 * 10, ping_interval=0.2) as ex:
        stream = BinanceStream(
            ex.ws_url,
            BinanceREST(ex.url, retry=FAST),
            reconnect=RetryPolicy(backoff=0.01, max_backoff=0.1),
            seed=3,
        )
        got = asyncio.run(collect(stream, 25, timeout=30))  # about 2.5 s: 12 ping intervals

    assert stream.stats["connects"] == 1
    assert (np.diff([b.open_ms for b in got]) == 60_000).all()
