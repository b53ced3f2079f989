"""Nothing lost, nothing twice: ``mlalgo live`` against the replay exchange's Binance order
endpoints is SIGKILLed at random points of a running session and restarted from its journal
each time. No client order id reaches the exchange twice, and the positions at the end, in the
journal and at the exchange, are those of the decisions (what an uninterrupted run holds)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlalgo.bundle import export_bundle
from mlalgo.config import ExecutionConfig, load_pipeline
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.journal import Journal
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPLUSDT", "MSFTUSDT"]  # the sample's stocks, named as a spot pair
KEY, SECRET = "crash-key", "crash-secret"
WARMUP, LIVE = 300, 260  # bars before the replay clock starts, bars it runs through
BAR_SECONDS = 0.65  # wall time per daily bar: 169 s of session, room for the kills
KILLS = int(os.environ.get("MLALGO_LIVE_KILLS", "100"))
UNIT = 10.0


@pytest.fixture(scope="module")
def session_bars(sample_bars: pd.DataFrame) -> pd.DataFrame:
    bars = sample_bars.loc[["AAPL", "MSFT"]].rename(index=lambda s: f"{s}USDT", level="symbol")
    times = bars.index.get_level_values("time")
    first = times.unique().sort_values()[1500]
    return bars.loc[times >= first].groupby(level="symbol").head(WARMUP + LIVE)


def bundle_path(tmp: Path, bars: pd.DataFrame) -> Path:
    spec = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
    x, y = compute(spec, bars), make_labels(bars, horizon=1)["y"]
    keep = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    text = LightGBMSignalClassifier(n_estimators=30).fit(x[keep], y[keep]).booster_
    return export_bundle(
        tmp / "models",
        "crash",
        model_text=text.model_to_string(),
        spec=spec,
        policy=DecisionPolicy(long_threshold=0.5, short_threshold=0.5, allow_short=False),
        execution=ExecutionConfig(sizing="units", unit_size=UNIT),
        input_example=[{"time": "2005-01-03T00:00:00+00:00", "symbol": "AAPL", "open": 1.0,
                        "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}],
        info={"symbols": SYMBOLS, "periods_per_year": 252},
    )  # fmt: skip


def executor_cmd(tmp: Path, ex: ReplayExchange, bundle: Path) -> list[str]:
    creds = tmp / "keys.yaml"
    if not creds.exists():
        creds.write_text(yaml.safe_dump({"binance": {"key_id": KEY, "secret": SECRET}}))
        creds.chmod(0o600)
        (tmp / "live.yaml").write_text(yaml.safe_dump({
            "durable": True, "row_wait": 0.2, "heartbeat_every": 1.0, "reload_every": None,
            "unknown_wait": 1.0, "warmup_bars": 250,
            "feed": {"poll_every": 0.05},
        }))  # fmt: skip
    return [sys.executable, "-m", "mlalgo", "live", "--config", str(tmp / "live.yaml"),
            "--model", str(bundle), "--feed", "rest-poll", "--broker", "binance",
            "--symbols", ",".join(SYMBOLS), "--base-url", ex.url, "--interval", "1d",
            "--credentials", str(tmp / "keys.yaml"), "--state-dir", str(tmp / "state"),
            "--strategy", "crash"]  # fmt: skip


def first_row(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until the executor has journalled a row: a first start warms up on the bars that
    have closed by then, so kills before it would only move the session's first bar."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            journal = Journal(path, durable=False)
            try:
                if journal.last_row() is not None:
                    return
            finally:
                journal.close()
        time.sleep(0.05)
    raise AssertionError(f"no row journalled within {timeout:g} s (exit code {proc.poll()})")


def test_sigkill_at_random_points_sends_no_order_twice_and_ends_on_the_decisions(
    tmp_path: Path, session_bars: pd.DataFrame
) -> None:
    rng = random.Random(11)
    bundle = bundle_path(tmp_path, session_bars.groupby(level="symbol").head(WARMUP))
    times = session_bars.index.get_level_values("time").unique().sort_values()
    start = times[WARMUP]
    with ReplayExchange(session_bars, interval="1d", speed=86_400 / BAR_SECONDS, start=start,
                        binance_key=(KEY, SECRET), cash=1e7,
                        faults=FaultSpec(rate_lost=0.05, seed=3)) as ex:  # fmt: skip
        cmd = executor_cmd(tmp_path, ex, bundle)
        log = (tmp_path / "executor.log").open("ab")
        journal_path = tmp_path / "state" / "crash" / "journal.db"
        kills = 0
        while kills < KILLS and not ex._book.clock.stopped:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
            if kills == 0:  # the session begins where its first row is journalled
                first_row(journal_path, proc)
            time.sleep(rng.uniform(0.3, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        last_bar = int(times[-1].value // 1_000_000)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(0.5)
            j = Journal(journal_path, durable=False)
            done = j.last_row() == last_bar and not j.open_intents()
            j.close()
            if done:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        ids = ex.client_order_ids("binance")
        exchange_positions = ex.positions("binance")

    assert kills == KILLS, f"the session ended after {kills} kills"
    journal = Journal(journal_path, durable=False)
    assert journal.last_row() == last_bar
    assert not journal.open_intents()
    assert len(ids) == len(set(ids)) > 20, "a client order id reached the exchange twice"
    intents = journal._db.execute("SELECT client_order_id, state FROM intents").fetchall()
    sent = {coid for coid, state in intents if state == "filled"}
    assert sent <= set(ids)
    final = journal.last_targets()
    expected = {s: max(final.get(s, 0.0), 0.0) * UNIT for s in SYMBOLS}
    got = journal.positions()
    for s in SYMBOLS:
        assert got.get(s, 0.0) == pytest.approx(expected[s], abs=1e-9)
        assert exchange_positions.get(s, 0.0) == pytest.approx(expected[s], abs=1e-9)
    # every bar from the first one traded (a first start warms up on what has closed) is
    # journalled once, none rejected
    first, n = journal._db.execute(
        "SELECT MIN(open_ms), COUNT(*) FROM bars WHERE accepted = 1"
    ).fetchone()
    owed = sum(1 for t in times if t.value // 1_000_000 >= first)
    assert n == len(SYMBOLS) * owed and owed > LIVE - 10
