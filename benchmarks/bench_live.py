"""Bar-to-order-intent latency of the live executor, and its start-up time.

python -m benchmarks.bench_live [--rows 1500]

Trains the default pipeline's model (pipelines/train.yaml features, 200 trees of 15 leaves)
on AAPL and MSFT up to 2009, exports a bundle and replays 2009 onwards through the executor
with the paper broker. Per row of two bars it times:

* ``decide``: online features, the compiled model, ``decide`` and the risk gate
  (``Executor.decide_row``), no journal;
* ``decide + journal``: the same plus the row's transaction in the SQLite journal, synced to
  disk (``durable``, ``synchronous=FULL``), and without the sync;

and, as the peer, what a bar-driven bot that recomputes a DataFrame does on each new bar
(the freqtrade pattern): batch features over the trailing window in pandas and
``lgb.Booster.predict`` on the last row, the same decision. Plus the time from process start
to the first decision (``mlalgo live`` on a bundle folder, replay feed). Plain text; timings
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlalgo.bundle import export_bundle, load_bundle
from mlalgo.config import ExecutionConfig, load_pipeline
from mlalgo.data.bar import Bar
from mlalgo.data.sample import load_sample
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.config import load_live_config
from mlalgo.live.executor import Executor
from mlalgo.live.feeds.replay import ReplayFeed
from mlalgo.live.journal import Journal
from mlalgo.live.paper_broker import PaperBroker
from mlalgo.model.estimators import make_estimator
from mlalgo.policy import DecisionPolicy

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "stocks_daily.csv"
SYMBOLS = ["AAPL", "MSFT"]
START = "2009-01-02"


def ms(ts: str) -> int:
    return int(pd.Timestamp(ts, tz="UTC").value // 1_000_000)


def bundle_at(root: Path, bars: pd.DataFrame):
    cfg = load_pipeline(ROOT / "pipelines" / "train.yaml")
    train = bars.loc[bars.index.get_level_values("time") < pd.Timestamp(START, tz="UTC")]
    x, y = compute(cfg.feature_spec, train), make_labels(train, horizon=1)["y"]
    keep = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    params = cfg.stages.train.model_dump(exclude={"model", "sample_weight", "logistic", "hist_gbm"})
    est = make_estimator("lightgbm", params, cfg.seed).fit(x[keep], y[keep])
    text = est.booster_.model_to_string()
    path = export_bundle(
        root,
        "bench",
        model_text=text,
        spec=cfg.feature_spec,
        policy=DecisionPolicy(),
        execution=ExecutionConfig(),
        input_example=[
            {
                "time": "2008-12-31T00:00:00+00:00",
                "symbol": "AAPL",
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "volume": 1.0,
            }
        ],
        info={"symbols": SYMBOLS, "periods_per_year": 252},
    )
    return load_bundle(path), text, cfg.feature_spec


def executor(root: Path, bundle, *, durable: bool) -> tuple[Executor, ReplayFeed]:
    cfg = load_live_config(
        None,
        {
            "state_dir": str(root),
            "durable": durable,
            "row_wait": 0.0,
            "reload_every": None,
            "heartbeat_every": 3600.0,
        },
    )
    feed = ReplayFeed(SAMPLE, SYMBOLS, start_ms=ms(START))
    broker = PaperBroker(bundle.execution, SYMBOLS, cash=100_000.0)
    journal = Journal(cfg.journal_path("bench"), durable=durable)
    ex = Executor(cfg, bundle, feed, broker, journal, strategy="bench", symbols=SYMBOLS)
    ex.start(first_ms=ms(START))
    return ex, feed


def rows_of(feed: ReplayFeed, limit: int) -> list[dict[str, Bar]]:
    out = []
    while len(out) < limit and not feed.exhausted:
        bars = feed.poll(0.0)
        if bars:
            out.append({b.symbol: b for b in bars})
    return out


def pct(ns: list[int]) -> str:
    arr = np.asarray(ns) / 1e3
    return f"p50 {np.percentile(arr, 50):9.1f} µs   p99 {np.percentile(arr, 99):9.1f} µs"


def time_executor(root: Path, bundle, rows: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {
        "decide": [],
        "decide + journal": [],
        "decide + journal (durable)": [],
    }
    ex, feed = executor(root / "a", bundle, durable=False)
    for row in rows_of(feed, rows):
        t0 = time.perf_counter_ns()
        ex.decide_row(next(iter(row.values())).open_ms, row)
        out["decide"].append(time.perf_counter_ns() - t0)
    for name, durable in (("decide + journal", False), ("decide + journal (durable)", True)):
        ex, feed = executor(root / name.replace(" ", "_"), bundle, durable=durable)
        for row in rows_of(feed, rows):
            open_ms = next(iter(row.values())).open_ms
            t0 = time.perf_counter_ns()
            decisions, legs = ex.decide_row(open_ms, row)
            ex.journal.record_row(
                decisions, strategy="bench", bundle="b/1", orders=legs, row_ms=open_ms
            )
            out[name].append(time.perf_counter_ns() - t0)
    return out


def time_peer(bars: pd.DataFrame, text: str, spec, rows: int, window: int) -> list[int]:
    booster = lgb.Booster(model_str=text)
    frames = {s: bars.loc[s] for s in SYMBOLS}
    times = frames[SYMBOLS[0]].index
    first = int(np.searchsorted(times, pd.Timestamp(START, tz="UTC")))
    out = []
    for t in range(first, min(first + rows, len(times))):
        t0 = time.perf_counter_ns()
        for s in SYMBOLS:
            tail = bars.loc[[s]].iloc[max(0, t - window + 1) : t + 1]
            x = compute(spec, tail).iloc[[-1]]
            booster.predict(x.to_numpy())
        out.append(time.perf_counter_ns() - t0)
    return out


FIRST = """
import json, sys, time
t0 = time.perf_counter()
from mlalgo.live.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_to_first_decision(root: Path, bundle_path: Path) -> float:
    args = [
        "--model",
        str(bundle_path),
        "--feed",
        "replay",
        "--broker",
        "paper",
        "--path",
        str(SAMPLE),
        "--start",
        START,
        "--end",
        "2009-01-06",
        "--state-dir",
        str(root / "first"),
    ]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FIRST, *args], capture_output=True, text=True)
    for line in done.stderr.splitlines():
        if line.startswith("{") and json.loads(line).get("event") == "fill":
            break
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1500)
    args = parser.parse_args()
    bars = load_sample(SYMBOLS, root=ROOT / "data" / "sample")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle, text, spec = bundle_at(root / "models", bars)
        timings = time_executor(root, bundle, args.rows)
        peer = time_peer(bars, text, spec, min(args.rows, 300), spec.warmup + 1)
        print(f"live executor, {len(SYMBOLS)} symbols per row, {len(timings['decide'])} rows")
        for name, ns in timings.items():
            print(f"  {name:<28} {pct(ns)}")
        print(f"  peer: pandas window + Booster {pct(peer)}  ({len(peer)} rows)")
        ratio = np.percentile(peer, 50) / np.percentile(timings["decide"], 50)
        print(f"  decide is {ratio:.0f}x faster than the peer at p50")
        print(
            f"start to exit of a 2-row session (process start, imports, warm-up, first "
            f"decision and fill): {start_to_first_decision(root, bundle.path):.2f} s"
        )


if __name__ == "__main__":
    main()
