"""Faults on the wire change nothing: the executor on the replay exchange's Binance endpoints,
with disconnects, 429s, 5xx answers, timeouts, cut-off bodies, lost order answers and
duplicated, reordered, malformed and corrupt klines, keeps running, fetches what the wire lost,
never decides on a broken bar, and ends where a clean session of the same bars ends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from live.live_support import KEY, SECRET, SPOT, ms, run_until, spot_bars, spot_bundle

from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.live.config import load_live_config
from mlalgo.live.journal import Journal
from mlalgo.live.session import Session

WARMUP, LIVE = 300, 120  # bars before the replay clock starts, bars it runs through
BAR_SECONDS = 0.15  # wall time per daily bar
UNIT = 10.0
WIRE = FaultSpec(
    rate_429=0.03, rate_5xx=0.03, rate_timeout=0.02, rate_truncate=0.03, rate_lost=0.05,
    rate_drop=0.03, rate_duplicate=0.08, rate_reorder=0.08, rate_malformed=0.05,
    rate_corrupt=0.05, retry_after=0, timeout_delay=0.3, seed=5,
)  # fmt: skip
FEEDS = {
    "binance-ws": WIRE,
    "rest-poll": FaultSpec(rate_429=0.05, rate_5xx=0.05, rate_timeout=0.02, rate_truncate=0.05,
                           rate_lost=0.05, retry_after=0, timeout_delay=0.3, seed=9),
}  # fmt: skip


@pytest.fixture(scope="module")
def bars(sample_bars: pd.DataFrame) -> pd.DataFrame:
    return spot_bars(sample_bars, WARMUP + LIVE)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, bars: pd.DataFrame) -> Path:
    train = bars.groupby(level="symbol").head(WARMUP)
    return spot_bundle(tmp_path_factory.mktemp("models"), train, name="faults", unit=UNIT)


def session(root: Path, bars: pd.DataFrame, bundle: Path, kind: str, faults: FaultSpec):
    """One session from the replay clock's first bar to its last; the journal's path, what the
    exchange holds and its fault counters."""
    times = bars.index.get_level_values("time").unique().sort_values()
    start, last = times[WARMUP], ms(times[-1])
    creds = root / "keys.yaml"
    creds.write_text(yaml.safe_dump({"binance": {"key_id": KEY, "secret": SECRET}}))
    creds.chmod(0o600)
    with ReplayExchange(bars, interval="1d", speed=86_400 / BAR_SECONDS, start=start,
                        binance_key=(KEY, SECRET), cash=1e7, faults=faults,
                        max_connection_seconds=4.0) as ex:  # fmt: skip
        cfg = load_live_config(None, {
            "model": str(bundle), "symbols": SPOT, "strategy": "faults",
            "state_dir": str(root / "state"), "durable": False, "warmup_bars": 250,
            "row_wait": 0.3, "unknown_wait": 0.5, "heartbeat_every": 1.0, "reload_every": None,
            "feed.kind": kind, "feed.interval": "1d", "feed.base_url": ex.url,
            "feed.ws_url": ex.ws_url, "feed.start": start.isoformat(), "feed.poll_every": 0.03,
            "broker.kind": "binance", "broker.base_url": ex.url, "broker.credentials": str(creds),
        })  # fmt: skip
        live = Session(cfg)
        live.executor.start(first_ms=ms(start))
        path = cfg.journal_path("faults")
        watcher = Journal(path, durable=False)

        def done() -> bool:
            if ex.now() >= times[-3]:  # the last bars come clean, so the session can end
                ex.faults = FaultSpec()
            return watcher.last_row() == last and not watcher.open_intents()

        try:
            finished = run_until(live.executor, done, timeout=120)
        finally:
            watcher.close()
            live.feed.close()
            live.journal.close()
        assert finished, f"the {kind} session did not reach its last bar"
        return path, ex.positions("binance"), ex.client_order_ids("binance"), ex.stats, ex


def table(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, bars: pd.DataFrame, bundle: Path):
    return session(tmp_path_factory.mktemp("clean"), bars, bundle, "binance-ws", FaultSpec())


DECISIONS = "SELECT symbol, open_ms, p_up, target FROM decisions ORDER BY open_ms, symbol"
ACCEPTED = (
    "SELECT symbol, open_ms, open, high, low, close, volume FROM bars WHERE accepted = 1"
    " ORDER BY open_ms, symbol"
)


@pytest.mark.parametrize("kind", list(FEEDS))
def test_a_faulty_wire_ends_on_the_clean_sessions_decisions_and_positions(
    tmp_path: Path, bars: pd.DataFrame, bundle: Path, clean, kind: str
) -> None:
    clean_path, clean_positions, clean_ids, _, _ = clean
    path, positions, ids, stats, ex = session(tmp_path, bars, bundle, kind, FEEDS[kind])

    # the faults happened
    rest = ("429", "5xx", "timeout", "truncate", "lost")
    assert all(stats[k] >= 1 for k in rest), {k: stats[k] for k in rest}
    if kind == "binance-ws":
        ws = ("drop", "duplicate", "reorder", "malformed", "corrupt")
        assert all(stats[k] >= 1 for k in ws), {k: stats[k] for k in ws}

    # every bar of the session, each exactly as the exchange closed it, decided on once
    accepted = table(path, ACCEPTED)
    assert accepted == table(clean_path, ACCEPTED)
    served = {
        (s, ms(t)): tuple(float(v) for v in row)
        for s in SPOT
        for t, row in ex.served(s)[["open", "high", "low", "close", "volume"]].iterrows()
    }
    assert all(served[(r[0], r[1])] == tuple(r[2:]) for r in accepted)
    assert table(path, DECISIONS) == table(clean_path, DECISIONS)
    assert len(accepted) == 2 * LIVE

    # a broken kline was turned away at the edge, and its valid copy fetched over REST
    if kind == "binance-ws":
        replaced = table(path, "SELECT COUNT(*) FROM bars WHERE reason LIKE 'replaces%'")
        assert replaced[0][0] >= 1
        assert not table(path, "SELECT symbol FROM bars WHERE accepted = 0")

    # the same orders, none twice, and the same positions at the exchange and in the journal
    assert len(ids) == len(set(ids)) == len(clean_ids) > 5
    assert set(ids) == set(clean_ids)
    journal = Journal(path, durable=False)
    try:
        final = journal.last_targets()
        got = journal.positions()
    finally:
        journal.close()
    for s in SPOT:
        want = max(final.get(s, 0.0), 0.0) * UNIT
        assert positions.get(s, 0.0) == pytest.approx(want, abs=1e-9)
        assert got.get(s, 0.0) == pytest.approx(want, abs=1e-9)
        assert clean_positions.get(s, 0.0) == pytest.approx(want, abs=1e-9)
