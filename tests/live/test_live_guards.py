"""The executor's guards on real brokers (the replay exchange's Binance and Alpaca endpoints over
loopback sockets): stale data halts or flattens, orders wait for the trading window, the manual
kill switch and the account limits flatten at the exchange and hold across restarts, SIGTERM
ends a session cleanly, and an Alpaca session ends on its decisions.

Most tests drive the executor by hand (``offer``/``process_ready``/``flush``/``check_*``) with an
injected wall clock and a static exchange clock, so no outcome hangs on a race; the ones that
need a running session wait on outcomes, with deadlines only as upper bounds. The bundle of
most tests is long whatever its model says (every P(up) is above a zero threshold), so what a
guard changes is plain: without it, every decision is "long ``UNIT`` units"."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from live.live_support import KEY, ROOT, SECRET, SPOT, ms, running, spot_bars, spot_bundle

from mlalgo.bundle import Bundle, load_bundle
from mlalgo.data.bar import Bar
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.live.brokers import AlpacaBroker, BinanceBroker
from mlalgo.live.config import load_live_config
from mlalgo.live.executor import FLATTEN_LEG, Executor
from mlalgo.live.feeds.base import Feed
from mlalgo.live.feeds.factory import make_feed
from mlalgo.live.journal import Journal
from mlalgo.live.risk import HALT_DAY_FLAG, KILL_FLAG
from mlalgo.secrets import Credentials, Secret

WARMUP = 260  # bars the bundles are trained on; the executor warms up on the last 250
UNIT = 10.0
DAY, HOUR = 86_400_000, 3_600_000
STRATEGY = "guards"
HELD = {s: UNIT / len(SPOT) for s in SPOT}  # an always-long session: a weight of 1/2 each
STALE = 0.3  # seconds without a bar before the stale guard acts (hand-driven tests)
ALPACA_KEY = ("alpaca-id", "alpaca-secret")
STOCKS = ["AAPL", "MSFT"]
COLUMNS = ["open", "high", "low", "close", "volume"]
# New York trading hours; the instants are a Saturday, a Monday before the open, and after it
HOURS = {"start": "09:30", "end": "16:00", "timezone": "America/New_York",
         "days": ["mon", "tue", "wed", "thu", "fri"]}  # fmt: skip
SATURDAY = datetime(2024, 6, 8, 15, 0, tzinfo=UTC).timestamp()
MONDAY_09_00 = datetime(2024, 6, 10, 13, 0, tzinfo=UTC).timestamp()
MONDAY_10_00 = datetime(2024, 6, 10, 14, 0, tzinfo=UTC).timestamp()


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bars(sample_bars: pd.DataFrame) -> pd.DataFrame:
    return spot_bars(sample_bars, WARMUP + 200)


@pytest.fixture(scope="module")
def times(bars: pd.DataFrame) -> pd.DatetimeIndex:
    return bars.index.get_level_values("time").unique().sort_values()


@pytest.fixture(scope="module")
def warm(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars before the first one traded: what a static exchange serves."""
    return bars.groupby(level="symbol").head(WARMUP)


@pytest.fixture(scope="module")
def always_long(tmp_path_factory: pytest.TempPathFactory, warm: pd.DataFrame) -> Bundle:
    """Long ``UNIT`` units on every bar (a zero threshold), so each guard's effect is plain."""
    root = tmp_path_factory.mktemp("models")
    return load_bundle(spot_bundle(root, warm, name="long", unit=UNIT, threshold=0.0))


class Events(logging.Handler):
    """The executor's emitted events, in order, as (name, fields)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "event", record.getMessage())
        self.seen.append((name, dict(getattr(record, "fields", None) or {})))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.seen if event == name]


@pytest.fixture
def events() -> Iterator[Events]:
    log = logging.getLogger("mlalgo.live")
    handler, level = Events(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)  # emit() checks the level before it builds a record
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def build(
    root: Path,
    bundle: Bundle,
    feed: Feed,
    broker: Any,
    settings: dict[str, Any] | None = None,
    *,
    wall: Callable[[], float] = time.time,
    symbols: list[str] = SPOT,
) -> Executor:
    """An executor on the journal under ``root``, as ``mlalgo live`` wires one, with ``settings``
    (dotted keys) over short waits and a non-durable journal."""
    cfg = load_live_config(None, {
        "state_dir": str(root / "state"), "durable": False, "warmup_bars": 250,
        "row_wait": 0.0, "unknown_wait": 0.5, "heartbeat_every": 1.0, "reload_every": None,
    } | (settings or {}))  # fmt: skip
    journal = Journal(cfg.journal_path(STRATEGY), durable=False)
    return Executor(cfg, bundle, feed, broker, journal, strategy=STRATEGY, symbols=symbols,
                    wall=wall)  # fmt: skip


def binance(x: ReplayExchange) -> BinanceBroker:
    return BinanceBroker(x.url, Credentials("binance", Secret(KEY), Secret(SECRET)), symbols=SPOT)


def rest_feed(x: ReplayExchange, start_ms: int | None = None, interval: str = "1d") -> Feed:
    return make_feed("rest-poll", symbols=SPOT, interval=interval, base_url=x.url,
                     poll_every=0.02, start_ms=start_ms)  # fmt: skip


def rows_of(bars: pd.DataFrame, times: pd.DatetimeIndex, symbols: list[str] = SPOT):
    """The bars of ``times`` as the executor's rows (one list of bars per bar time)."""
    return [
        [Bar(s, ms(t), *(float(v) for v in bars.loc[(s, t), COLUMNS])) for s in symbols]
        for t in times
    ]


def drift(last: list[Bar], factors: list[float], step_ms: int) -> list[list[Bar]]:
    """Rows after ``last`` whose closes are ``factors`` times ``last``'s; each bar opens at the
    previous close. Prices a test chooses: a rise, then a fall of a known size."""
    rows: list[list[Bar]] = []
    prev = {b.symbol: b.close for b in last}
    for k, factor in enumerate(factors, 1):
        row = []
        for b in last:
            o, c = prev[b.symbol], b.close * factor
            row.append(Bar(b.symbol, b.open_ms + k * step_ms, o, max(o, c), min(o, c), c,
                           b.volume))  # fmt: skip
            prev[b.symbol] = c
        rows.append(row)
    return rows


def step(ex: Executor, row: list[Bar]) -> None:
    """One row, as the loop hands it over: offered, then processed (and its orders sent)."""
    for bar in row:
        ex.offer(bar)
    ex.process_ready()


def table(path: Path, sql: str, *args: Any) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def targets(path: Path, after_ms: int = -1) -> dict[tuple[str, int], float]:
    rows = table(path, "SELECT symbol, open_ms, target FROM decisions WHERE open_ms > ?", after_ms)
    return {(s, t): target for s, t, target in rows}


def rows_after(path: Path, after_ms: int) -> int:
    """How many bar times after ``after_ms`` have been decided on."""
    sql = "SELECT COUNT(DISTINCT open_ms) FROM decisions WHERE open_ms > ?"
    return table(path, sql, after_ms)[0][0]


def flat(positions: dict[str, float]) -> bool:
    return all(abs(v) < 1e-9 for v in positions.values())


def cli(*args: str | Path) -> str:
    """``mlalgo live ...`` as an operator runs it; its stdout."""
    done = subprocess.run([sys.executable, "-m", "mlalgo", "live", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# -- 1. stale data --------------------------------------------------------------------------


def test_stale_data_with_halt_keeps_orders_in_the_journal_until_bars_return(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle, events,
) -> None:  # fmt: skip
    """A row decided after the data went stale (MSFT's bar came; AAPL's did not, nor is it on
    REST) journals its order but sends nothing; the next bars end the halt and the order goes
    out with theirs."""
    row0, row1 = rows_of(bars, times[WARMUP : WARMUP + 2])
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=1e6) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x), {
            "row_wait": 2 * STALE, "guards.stale_after": STALE * 1000 / DAY,
            "guards.on_stale": "halt",
        })  # fmt: skip
        ex.start(first_ms=row0[0].open_ms)

        ex.offer(row0[1])  # MSFT's bar; AAPL's does not come
        time.sleep(2 * STALE + 0.1)  # past the stale limit and the row's wait
        ex.check_stale()
        ex.process_ready()  # the row is decided without AAPL, the data stale
        ex.flush()
        ex.poll_orders()

        (waiting,) = ex.journal.open_intents()
        assert (waiting.symbol, waiting.side, waiting.quantity, waiting.state) == (
            "MSFTUSDT", "buy", HELD["MSFTUSDT"], "intended")  # fmt: skip
        assert x.client_order_ids("binance") == [] and ex.journal.positions() == {}
        assert ex.status()["stale"]
        assert [e["action"] for e in events.named("stale_data")] == ["halt"]

        step(ex, row1)  # bars again

        assert not ex.status()["stale"] and events.named("data_resumed")
        assert waiting.client_order_id in x.client_order_ids("binance")
        assert x.positions("binance") == HELD
        assert ex.journal.positions() == HELD and ex.journal.open_intents() == []
        ex.journal.close()


def test_stale_data_with_flatten_sells_everything_at_the_exchange(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, always_long: Bundle, events
) -> None:
    """The exchange's clock runs through ten bars and stops; once no bar has come for the
    stale limit, a running session sells what it holds, at the exchange and in the journal."""
    served = bars.groupby(level="symbol").head(WARMUP + 10)
    first, last = ms(times[WARMUP]), ms(times[WARMUP + 9])
    with ReplayExchange(served, interval="1d", speed=86_400 / 0.1, start=times[WARMUP],
                        binance_key=(KEY, SECRET), cash=1e6) as x:  # fmt: skip
        ex = build(tmp_path, always_long, rest_feed(x, first), binance(x), {
            "guards.stale_after": 1000 / DAY, "guards.on_stale": "flatten",  # one second
        })  # fmt: skip
        watcher = Journal(ex.journal.path, durable=False)
        ex.start(first_ms=first)
        with running(ex) as wait:
            wait(lambda: watcher.last_row() == last and not watcher.open_intents()
                 and x.positions("binance") == {}, "the last bar, then a flat account")  # fmt: skip
        ids = x.client_order_ids("binance")

    assert [e["action"] for e in events.named("stale_data")][-1] == "flatten"
    assert events.named("flatten")[-1]["reason"] == "stale data"
    assert flat(watcher.positions())
    bought = table(watcher.path, "SELECT symbol FROM intents WHERE side = 'buy' AND "
                   "state = 'filled' AND open_ms >= ?", first)  # fmt: skip
    assert {s for (s,) in bought} == set(SPOT)
    sold = table(watcher.path, "SELECT symbol, quantity, state FROM intents WHERE open_ms = ? "
                 "AND leg = ? AND side = 'sell'", last, FLATTEN_LEG)  # fmt: skip
    assert sorted(sold) == [(s, HELD[s], "filled") for s in SPOT]
    assert len(ids) == len(set(ids))
    watcher.close()
    ex.journal.close()


# -- 2. trading hours -----------------------------------------------------------------------


def test_orders_outside_trading_hours_wait_in_the_journal_for_the_window(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, always_long: Bundle
) -> None:
    """Decided on a Saturday and before Monday's open, the orders stay ``intended``; the first
    flush inside the window sends each of them once."""
    now = [SATURDAY]
    served = bars.groupby(level="symbol").head(WARMUP + 5)
    row0, row1 = rows_of(bars, times[WARMUP : WARMUP + 2])
    with ReplayExchange(served, interval="1d", binance_key=(KEY, SECRET), cash=1e6) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x), {"guards.hours": HOURS},
                   wall=lambda: now[0])  # fmt: skip
        ex.start(first_ms=row0[0].open_ms)
        step(ex, row0)
        step(ex, row1)  # decided again (long), nothing more to order
        waiting = ex.journal.open_intents()
        assert sorted((i.symbol, i.side, i.quantity, i.state) for i in waiting) == [
            (s, "buy", HELD[s], "intended") for s in SPOT]  # fmt: skip
        for instant in (SATURDAY, MONDAY_09_00):
            now[0] = instant
            ex.flush()
            ex.poll_orders()
        assert x.client_order_ids("binance") == [] and x.positions("binance") == {}

        now[0] = MONDAY_10_00
        ex.flush()
        ex.flush()

        assert sorted(x.client_order_ids("binance")) == sorted(i.client_order_id for i in waiting)
        assert x.positions("binance") == HELD and ex.journal.positions() == HELD
        assert ex.journal.open_intents() == []
        assert set(targets(ex.journal.path).values()) == {0.5}
        ex.journal.close()


def test_a_kill_voids_orders_still_waiting_for_the_trading_window(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, always_long: Bundle
) -> None:
    """Buys decided before a kill must not reach the exchange after it."""
    now = [SATURDAY]
    served = bars.groupby(level="symbol").head(WARMUP + 5)
    (row0,) = rows_of(bars, times[WARMUP : WARMUP + 1])
    with ReplayExchange(served, interval="1d", binance_key=(KEY, SECRET), cash=1e6) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x), {"guards.hours": HOURS},
                   wall=lambda: now[0])  # fmt: skip
        ex.start(first_ms=row0[0].open_ms)
        step(ex, row0)  # two buys wait for Monday
        cli("kill", "--state-dir", tmp_path / "state", "--strategy", STRATEGY)
        ex.check_kill()
        now[0] = MONDAY_10_00
        ex.flush()
        held = x.positions("binance")
        ex.journal.close()
    assert held == {}


# -- 3. the manual kill switch --------------------------------------------------------------


def test_manual_kill_flattens_a_running_session_and_holds_across_restarts_until_resume(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, always_long: Bundle, events
) -> None:
    """``mlalgo live kill`` against a running session that holds positions: they are sold at the
    exchange and every later decision is flat; a new executor on the same journal stays killed
    (no buys) until ``mlalgo live resume``, after which it buys again."""
    first, state = ms(times[WARMUP]), tmp_path / "state"
    reason = "operator says stop"
    with ReplayExchange(bars, interval="1d", speed=86_400 / 0.25, start=times[WARMUP],
                        binance_key=(KEY, SECRET), cash=1e6) as x:  # fmt: skip
        ex = build(tmp_path, always_long, rest_feed(x, first), binance(x))
        watcher = Journal(ex.journal.path, durable=False)
        ex.start(first_ms=first)
        with running(ex) as wait:
            wait(lambda: x.positions("binance") == HELD, "the first buys")
            assert "kill switch set" in cli("kill", "--state-dir", state, "--strategy",
                                            STRATEGY, "--reason", reason)  # fmt: skip
            wait(lambda: x.positions("binance") == {}, "the kill switch's sells")
            killed_at = watcher.last_row()
            wait(lambda: rows_after(watcher.path, killed_at) >= 3, "three more bars")
        ex.journal.close()
        ex.feed.close()
        ids = x.client_order_ids("binance")

        assert [e["reason"] for e in events.named("kill_switch")] == [reason]
        after = targets(watcher.path, killed_at)
        assert len(after) >= 3 * len(SPOT) and set(after.values()) == {0.0}
        assert set(targets(watcher.path).values()) == {0.0, 0.5}
        assert flat(watcher.positions()) and watcher.open_intents() == []
        assert len(ids) == len(set(ids))

        # a new executor on the same journal: still killed
        restarted_at = watcher.last_row()
        again = build(tmp_path, always_long, rest_feed(x, restarted_at + DAY), binance(x))
        again.start()
        assert events.named("started")[-1]["killed"] == reason
        with running(again) as wait:
            wait(lambda: rows_after(watcher.path, restarted_at) >= 3, "three bars after restart")
            assert x.client_order_ids("binance") == ids and x.positions("binance") == {}
            resumed_at = watcher.last_row()
            assert "kill switch cleared" in cli("resume", "--state-dir", state)
            wait(lambda: x.positions("binance") == HELD, "buys after the resume")
        again.journal.close()
        again.feed.close()

    restarted = targets(watcher.path, restarted_at)
    assert {t for (_, at), t in restarted.items() if at <= resumed_at} == {0.0}
    assert watcher.flag(KILL_FLAG) is None
    assert watcher.positions() == HELD
    watcher.close()


def test_a_kill_cancels_working_orders_at_the_exchange(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle, events,
) -> None:  # fmt: skip
    """Buys working at the exchange (not filled yet) when the kill switch is set are cancelled
    there: the kill leaves nothing held and nothing open."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    (up,) = drift(last, [1.01], DAY)
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500,
                        hold_orders=True) as x:  # fmt: skip
        ex = build(tmp_path, always_long, rest_feed(x), binance(x))
        ex.start(first_ms=up[0].open_ms)
        step(ex, up)
        working = ex.journal.open_intents()
        assert [i.state for i in working] == ["acked"] * len(SPOT)

        cli("kill", "--state-dir", tmp_path / "state", "--strategy", STRATEGY)
        ex.check_kill()
        ex.poll_orders()

        assert len(events.named("order_cancel_requested")) == len(SPOT)
        assert x.release_orders("binance") == 0  # nothing left working to fill
        assert ex.journal.open_intents() == [] and x.positions("binance") == {}
        states = {ex.journal.intent(i.client_order_id).state for i in working}
        assert states == {"cancelled"} and flat(ex.journal.positions())
        ex.journal.close()


def test_an_order_that_fills_after_the_kills_flatten_is_sold_too(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle, events,
) -> None:  # fmt: skip
    """The buys fill at the exchange before the executor hears of it, so the kill finds
    nothing held and its cancels are refused. When the fills arrive the account is flattened
    again, and once it is flat nothing more is sent."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    up, later = drift(last, [1.01, 1.02], DAY)
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500,
                        hold_orders=True) as x:  # fmt: skip
        ex = build(tmp_path, always_long, rest_feed(x), binance(x))
        ex.start(first_ms=up[0].open_ms)
        step(ex, up)
        assert x.release_orders("binance") == len(SPOT)  # filled; the executor does not know
        assert x.positions("binance") == HELD and flat(ex.journal.positions())

        cli("kill", "--state-dir", tmp_path / "state", "--strategy", STRATEGY)
        ex.check_kill()
        assert len(events.named("cancel_failed")) == len(SPOT)
        assert not events.named("flatten")  # as far as the journal knew, nothing was held

        ex.poll_orders()  # the fills arrive after the kill
        assert ex.journal.positions() == HELD
        ex.keep_flat()
        (again,) = events.named("flatten_again")
        assert again["positions"] == HELD
        assert x.release_orders("binance") == len(SPOT)
        ex.poll_orders()
        assert x.positions("binance") == {} and flat(ex.journal.positions())

        ids = x.client_order_ids("binance")
        step(ex, later)
        ex.keep_flat()
        assert x.client_order_ids("binance") == ids and len(ids) == len(set(ids)) == 4
        assert len(events.named("flatten_again")) == 1
        ex.journal.close()


def test_an_order_lost_on_the_way_before_a_kill_is_voided_not_sent_again(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle, events,
) -> None:  # fmt: skip
    """Buys whose requests met a 5xx (status unknown; the exchange never placed them), then
    the kill switch: once ``unknown_wait`` has passed they are voided in the journal instead
    of being sent again, so a decision from before the kill never reaches the exchange."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    (up,) = drift(last, [1.01], DAY)
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x))
        ex.start(first_ms=up[0].open_ms)
        x.faults = FaultSpec(rate_5xx=1.0)
        step(ex, up)
        x.faults = FaultSpec()
        lost = ex.journal.open_intents()
        assert [i.state for i in lost] == ["sent"] * len(SPOT)
        assert len(events.named("order_status_unknown")) == len(SPOT)

        cli("kill", "--state-dir", tmp_path / "state", "--strategy", STRATEGY)
        ex.check_kill()
        assert len(ex.journal.open_intents()) == len(SPOT)  # out: only the broker can tell
        time.sleep(ex.cfg.unknown_wait + 0.1)
        ex.poll_orders()  # asked: the exchange never saw them

        assert len(events.named("order_voided")) == len(SPOT) and not events.named("resend_unknown")
        assert ex.journal.open_intents() == [] and x.client_order_ids("binance") == []
        assert {ex.journal.intent(i.client_order_id).state for i in lost} == {"cancelled"}
        ex.journal.close()


# -- 4. account limits ----------------------------------------------------------------------


def test_max_drawdown_flattens_at_the_exchange_and_its_kill_switch_survives_a_restart(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle, events,
) -> None:  # fmt: skip
    """A 15% fall after two up days is a drawdown of about 5% of a 500 USDT account holding
    some 160 USDT of stock: past a 2% limit, everything is sold and the kill switch set; a new
    executor on the same journal buys nothing."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    up1, up2, fall, later, restarted = drift(last, [1.01, 1.02, 0.85, 0.86, 0.9], DAY)
    settings = {"guards.max_drawdown": 0.02}
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x), settings)
        ex.start(first_ms=up1[0].open_ms)
        step(ex, up1)
        step(ex, up2)
        assert x.positions("binance") == HELD and not events.named("account_limit")

        step(ex, fall)

        (limit,) = events.named("account_limit")
        assert (limit["limit"], limit["open_ms"]) == ("max_drawdown", fall[0].open_ms)
        assert x.positions("binance") == {} and flat(ex.journal.positions())
        assert ex.journal.flag(KILL_FLAG) == f"max_drawdown at bar {fall[0].open_ms}"
        ids = x.client_order_ids("binance")
        step(ex, later)
        assert x.client_order_ids("binance") == ids
        ex.journal.close()

        again = build(tmp_path, always_long, rest_feed(x), binance(x), settings)
        again.start()
        step(again, restarted)

        assert events.named("started")[-1]["killed"] == f"max_drawdown at bar {fall[0].open_ms}"
        assert x.client_order_ids("binance") == ids and x.positions("binance") == {}
        path = again.journal.path
        again.journal.close()
    decided = targets(path)
    assert {decided[(s, up2[0].open_ms)] for s in SPOT} == {0.5}
    assert {decided[(s, r[0].open_ms)] for s in SPOT for r in (later, restarted)} == {0.0}


def test_resume_after_a_drawdown_kill_trades_again(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle,
) -> None:  # fmt: skip
    """A person who resumes after a drawdown kill means "trade from here": the next buys
    stand instead of being sold again against the old peak."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    up1, up2, fall, later = drift(last, [1.01, 1.02, 0.85, 0.86], DAY)
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x), {"guards.max_drawdown": 0.02})
        ex.start(first_ms=up1[0].open_ms)
        for row in (up1, up2, fall):
            step(ex, row)
        cli("resume", "--state-dir", tmp_path / "state")
        ex.check_kill()  # the loop's next turn reads the journal's flags
        step(ex, later)
        held, flag = x.positions("binance"), ex.journal.flag(KILL_FLAG)
        ex.journal.close()
    assert flag is None and held == HELD


def hourly(frame: pd.DataFrame, last: pd.Timestamp) -> pd.DataFrame:
    """``frame``'s bars, relabelled as consecutive hours ending at ``last``."""
    old = frame.index.get_level_values("time").unique().sort_values()
    new = pd.date_range(end=last, periods=len(old), freq="1h")
    return frame.rename(index=dict(zip(old, new, strict=True)), level="time")


def test_max_daily_loss_flattens_and_halts_only_until_the_next_utc_day(
    tmp_path: Path, warm: pd.DataFrame, always_long: Bundle, events
) -> None:
    """Hourly bars: a 15% fall in the day's second hour trips a 2% daily loss; the positions are
    sold, the rest of that UTC day decides flat, and the next day's first bar buys again."""
    hours = hourly(warm, pd.Timestamp("2024-03-04 23:00", tz="UTC"))
    (last,) = rows_of(hours, hours.index.get_level_values("time").unique()[-1:])
    # all of 5 March, then 6 March's first hour back at the static exchange's price (where
    # its buys fill), so the new day's start is the only thing that changed
    rows = drift(last, [1.01, 0.85, *[0.86] * 22, 1.0], HOUR)
    day = rows[0][0].open_ms // DAY
    with ReplayExchange(hours, interval="1h", binance_key=(KEY, SECRET), cash=500) as x:
        ex = build(tmp_path, always_long, rest_feed(x, interval="1h"), binance(x),
                   {"guards.max_daily_loss": 0.02})  # fmt: skip
        ex.start(first_ms=rows[0][0].open_ms)
        step(ex, rows[0])
        assert x.positions("binance") == HELD

        step(ex, rows[1])

        (limit,) = events.named("account_limit")
        assert (limit["limit"], limit["open_ms"]) == ("max_daily_loss", rows[1][0].open_ms)
        assert x.positions("binance") == {} and flat(ex.journal.positions())
        assert ex.journal.flag(HALT_DAY_FLAG) == str(day)
        assert ex.journal.flag(KILL_FLAG) is None
        ids = x.client_order_ids("binance")
        for row in rows[2:24]:
            step(ex, row)
        assert x.client_order_ids("binance") == ids

        step(ex, rows[24])  # 00:00 on the next day

        assert x.positions("binance") == HELD and ex.journal.positions() == HELD
        decided = targets(ex.journal.path)
        ex.journal.close()
    halted = {decided[(s, r[0].open_ms)] for s in SPOT for r in rows[2:24]}
    assert halted == {0.0} and {decided[(s, rows[24][0].open_ms)] for s in SPOT} == {0.5}


def test_max_daily_loss_trips_on_daily_bars_as_in_the_backtest(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, warm: pd.DataFrame,
    always_long: Bundle,
) -> None:  # fmt: skip
    """On daily bars a 15% fall is a day's loss of about 5% of the account, past a 2% limit."""
    (last,) = rows_of(bars, times[WARMUP - 1 : WARMUP])
    up, fall = drift(last, [1.01, 0.85], DAY)
    with ReplayExchange(warm, interval="1d", binance_key=(KEY, SECRET), cash=500) as x:
        ex = build(tmp_path, always_long, rest_feed(x), binance(x),
                   {"guards.max_daily_loss": 0.02})  # fmt: skip
        ex.start(first_ms=up[0].open_ms)
        step(ex, up)
        step(ex, fall)
        held, halted = x.positions("binance"), ex.journal.flag(HALT_DAY_FLAG)
        ex.journal.close()
    assert held == {} and halted == str(fall[0].open_ms // DAY)


# -- 5. SIGTERM -----------------------------------------------------------------------------


def test_sigterm_stops_mlalgo_live_cleanly(
    tmp_path: Path, bars: pd.DataFrame, times: pd.DatetimeIndex, always_long: Bundle
) -> None:
    """``mlalgo live`` on the Binance endpoints, SIGTERMed mid-session: exit code 0, ``stopped``
    is its last log line, the status reads back, and no order is left half-way."""
    creds, config, state = tmp_path / "keys.yaml", tmp_path / "live.yaml", tmp_path / "state"
    creds.write_text(yaml.safe_dump({"binance": {"key_id": KEY, "secret": SECRET}}))
    creds.chmod(0o600)
    config.write_text(yaml.safe_dump({
        "durable": False, "row_wait": 0.2, "heartbeat_every": 0.5, "reload_every": None,
        "unknown_wait": 1.0, "warmup_bars": 250, "feed": {"poll_every": 0.05},
    }))  # fmt: skip
    journal_path = state / STRATEGY / "journal.db"
    with ReplayExchange(bars, interval="1d", speed=86_400 / 0.2, start=times[WARMUP],
                        binance_key=(KEY, SECRET), cash=1e6) as x:  # fmt: skip
        cmd = [sys.executable, "-m", "mlalgo", "live", "--config", config,
               "--model", always_long.path, "--feed", "rest-poll", "--broker", "binance",
               "--symbols", ",".join(SPOT), "--base-url", x.url, "--interval", "1d",
               "--credentials", creds, "--state-dir", state, "--strategy", STRATEGY]  # fmt: skip
        with (tmp_path / "stderr.log").open("wb") as err:
            proc = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=err)  # fmt: skip
            try:
                deadline = time.monotonic() + 90
                while not (journal_path.exists() and x.positions("binance") == HELD
                           and len(table(journal_path, "SELECT DISTINCT open_ms FROM decisions"))
                           >= 3):  # fmt: skip
                    assert proc.poll() is None, "mlalgo live exited early"
                    assert time.monotonic() < deadline, "mlalgo live never traded"
                    time.sleep(0.1)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        held = x.positions("binance")

    assert code == 0
    logged = [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines()
              if line.startswith("{")]  # fmt: skip
    assert logged[0]["event"] == "started" and logged[-1]["event"] == "stopped"
    status = json.loads(cli("status", "--state-dir", state))
    assert status["open_intents"] == [] and status["kill_switch"] is None
    assert status["positions"] == held == HELD
    assert status["last_row_ms"] == table(journal_path, "SELECT MAX(open_ms) FROM bars")[0][0]
    assert status["stats"]["rows"] >= 3  # from the status file written on the way out
    unfinished = table(journal_path, "SELECT client_order_id FROM intents WHERE state IN "
                       "('intended', 'sent', 'acked')")  # fmt: skip
    assert unfinished == []


# -- 6. Alpaca end to end -------------------------------------------------------------------


def test_an_alpaca_session_ends_on_its_decisions(tmp_path: Path, sample_bars: pd.DataFrame) -> None:
    """A rest-poll feed of Alpaca bars and the Alpaca broker through 40 bars: journal and
    exchange agree, both equal the last decisions times the unit size, no id twice."""
    stocks = spot_bars(sample_bars, WARMUP + 40, suffix="")
    train = stocks.groupby(level="symbol").head(WARMUP)
    bundle = load_bundle(spot_bundle(tmp_path / "models", train, name="alpaca", unit=UNIT,
                                     symbols=STOCKS))  # fmt: skip
    times = stocks.index.get_level_values("time").unique().sort_values()
    first, last = ms(times[WARMUP]), ms(times[-1])
    with ReplayExchange(stocks, interval="1d", speed=86_400 / 0.08, start=times[WARMUP],
                        alpaca_key=ALPACA_KEY, cash=1e6) as x:  # fmt: skip
        feed = make_feed("rest-poll", symbols=STOCKS, interval="1d", provider="alpaca",
                         base_url=x.url, key=ALPACA_KEY, poll_every=0.02,
                         start_ms=first)  # fmt: skip
        broker = AlpacaBroker(x.url, Credentials("alpaca", *map(Secret, ALPACA_KEY)))
        ex = build(tmp_path, bundle, feed, broker, {"row_wait": 0.3}, symbols=STOCKS)
        watcher = Journal(ex.journal.path, durable=False)
        ex.start(first_ms=first)
        with running(ex) as wait:
            wait(lambda: watcher.last_row() == last and not watcher.open_intents(),
                 "the last bar, every order settled")  # fmt: skip
        held, ids = x.positions("alpaca"), x.client_order_ids("alpaca")
        ex.journal.close()

    final = watcher.last_targets()
    want = {s: max(final[s], 0.0) * UNIT for s in STOCKS}
    got = watcher.positions()
    for s in STOCKS:
        assert got.get(s, 0.0) == pytest.approx(want[s], abs=1e-9)
        assert held.get(s, 0.0) == pytest.approx(want[s], abs=1e-9)
    assert len(ids) == len(set(ids)) > 4
    filled = table(watcher.path, "SELECT client_order_id FROM intents WHERE state = 'filled'")
    assert {c for (c,) in filled} == set(ids)
    decided = table(watcher.path, "SELECT COUNT(*) FROM decisions WHERE open_ms >= ?", first)
    assert decided[0][0] == 40 * len(STOCKS)
    watcher.close()
