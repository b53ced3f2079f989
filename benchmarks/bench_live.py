"""Bar-to-order-intent latency of the live executor, and its time from start to first decision.

python -m benchmarks.bench_live [--passes 3] [--starts 5]

Trains the default pipeline's model (pipelines/train.yaml features, 200 trees of 15 leaves)
on AAPL and MSFT up to 2009, exports a bundle and replays 2009 onwards through the executor.

Latency is timed by :mod:`benchmarks.live_probe` in a process that imports what ``mlalgo live``
imports and nothing else (no pandas: its garbage collections are the live process's). Per ROW
of two bars and per BAR (a one-symbol executor) it times ``Executor.decide_row`` (online
features, the model, ``decide`` and the risk gate) in the steady state (the compiled
evaluator answering; see :mod:`mlalgo.model.row`), alone, then with
the row's SQLite journal transaction unsynced and durable (``synchronous=FULL``); for a bar
also with an order broker, where a changed target is sized and capped by the risk gate. The
goals: at most 50 µs p99 per bar without the journal write, at most 2 ms p99 with a durable
one.

The peer is what a bar-driven bot that recomputes a DataFrame does on each new bar (the
freqtrade pattern): batch features over the trailing window in pandas and
``lgb.Booster.predict`` on the last row, per bar and per row of two.

Start to first decision (goal under 1 s): from just before ``python -m mlalgo live`` is
spawned to its ``first_decision`` event (the first row decided and journalled with its order
intents), for two sessions: the paper broker on the replay feed (its account is the
backtest's numba core, loaded at start), and the Binance broker with the REST feed on the
replay exchange over loopback (what a live session runs; no numba). Median of ``--starts``
runs with numba's on-disk cache in place, the steps of a start timed one by one
(:mod:`benchmarks.start_probe`), and a paper start with an empty numba cache (the first start
after an install). Plain text, no assertions; timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml

from mlalgo.bundle import export_bundle, load_bundle
from mlalgo.config import ExecutionConfig, load_pipeline
from mlalgo.data.exchange import ReplayExchange
from mlalgo.data.sample import load_sample
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.model.estimators import make_estimator
from mlalgo.policy import DecisionPolicy

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "stocks_daily.csv"
SYMBOLS = ["AAPL", "MSFT"]
SPOT = [f"{s}USDT" for s in SYMBOLS]  # the same stocks, listed by the replay exchange
KEY = ("bench-key", "bench-secret")
EXAMPLE = [
    {"time": "2008-12-31T00:00:00+00:00", "symbol": "AAPL", "open": 1.0, "high": 1.0}
    | {"low": 1.0, "close": 1.0, "volume": 1.0}
]
START = "2009-01-02"
EXCHANGE_START = "2013-02-26"  # the sample's last week: a few rows to trade, then quiet
BAR_P99_GOAL_US = 50.0
DURABLE_P99_GOAL_US = 2000.0
FIRST_DECISION_GOAL_S = 1.0


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
        input_example=EXAMPLE,
        info={"symbols": SYMBOLS, "periods_per_year": 252},
    )
    return load_bundle(path), text, cfg.feature_spec


def stats(ns: list[int]) -> tuple[float, float, float]:
    """p50, p99 and max in microseconds."""
    arr = np.asarray(ns, dtype=np.float64) / 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max())


def line(name: str, ns: list[int], goal_us: float | None = None) -> str:
    p50, p99, top = stats(ns)
    out = f"  {name:<40} {len(ns):6d} {p50:10.1f} {p99:10.1f} {top:10.1f}"
    if goal_us is not None:
        verdict = "met" if p99 <= goal_us else "NOT met"
        out += f"   goal p99 <= {goal_us:g} µs: {verdict}"
    return out


def time_peer(
    bars: pd.DataFrame, text: str, spec, rows: int, window: int
) -> tuple[list[int], list[int]]:
    """Nanoseconds per bar (the first symbol's) and per row of every symbol."""
    booster = lgb.Booster(model_str=text)
    times = bars.loc[SYMBOLS[0]].index
    first = int(np.searchsorted(times, pd.Timestamp(START, tz="UTC")))
    per_bar, per_row = [], []
    for t in range(first, min(first + rows, len(times))):
        row = 0
        for s in SYMBOLS:
            t0 = time.perf_counter_ns()
            tail = bars.loc[[s]].iloc[max(0, t - window + 1) : t + 1]
            x = compute(spec, tail).iloc[[-1]]
            booster.predict(x.to_numpy())
            elapsed = time.perf_counter_ns() - t0
            if s == SYMBOLS[0]:
                per_bar.append(elapsed)
            row += elapsed
        per_row.append(row)
    return per_bar, per_row


def probe_latency(bundle_path: Path, state: Path, passes: int) -> dict[str, list[int]]:
    cmd = [sys.executable, "-m", "benchmarks.live_probe", str(bundle_path), str(state)]
    done = subprocess.run([*cmd, "--passes", str(passes)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    out = json.loads(done.stdout)
    if out["heavy_modules"]:
        raise SystemExit(f"the latency probe imported {out['heavy_modules']}; it must not")
    return out["timings"]


def live_args(bundle_path: Path, state: Path) -> list[str]:
    """A paper session on the sample: the replay feed over its first two rows of 2009."""
    return [
        "--model",
        str(bundle_path),
        "--feed",
        "replay",
        "--broker",
        "paper",
        "--symbols",
        ",".join(SYMBOLS),
        "--start",
        START,
        "--end",
        "2009-01-06",
        "--state-dir",
        str(state),
    ]


def exchange_args(bundle_path: Path, state: Path, url: str, keys: Path) -> list[str]:
    """A Binance session on the replay exchange: REST feed and signed orders over loopback."""
    return [
        "--model",
        str(bundle_path),
        "--feed",
        "rest-poll",
        "--broker",
        "binance",
        "--symbols",
        ",".join(SPOT),
        "--base-url",
        url,
        "--credentials",
        str(keys),
        "--interval",
        "1d",
        "--start",
        EXCHANGE_START,
        "--state-dir",
        str(state),
    ]


def first_decision(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Seconds from spawning ``python -m mlalgo live ARGS`` to its ``first_decision`` event
    (the first row decided and journalled, its order intents with it), split at the executor's
    ``started`` event (which carries how long ``Executor.start`` took). A session that does not
    end by itself is stopped with SIGTERM once it has decided."""
    cmd = [sys.executable, "-m", "mlalgo", "live", *args]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    events: dict[str, dict] = {}
    assert proc.stderr is not None
    for text in proc.stderr:
        if text.startswith("{"):
            event = json.loads(text)
            events.setdefault(event["event"], event)
            if event["event"] == "first_decision":
                proc.send_signal(signal.SIGTERM)
                break
    tail = proc.communicate(timeout=120)[1]
    if "first_decision" not in events:
        raise SystemExit(f"mlalgo live made no decision (exit {proc.returncode}): {tail[-2000:]}")
    started, first = events["started"], events["first_decision"]
    return {
        "total": first["ts"] - t0,
        "before": started["ts"] - started["seconds"] - t0,
        "start": started["seconds"],
        "row": first["ts"] - started["ts"],
    }


def start_steps(args: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "benchmarks.start_probe"]
    spawned = time.time()
    done = subprocess.run([*cmd, repr(spawned), *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout)


def report_latency(timings: dict[str, list[int]], peer_bar: list[int], peer_row: list[int]) -> None:
    print("live executor latency: Executor.decide_row in a process with the live imports only")
    print(f"  {'':<40} {'n':>6} {'p50 µs':>10} {'p99 µs':>10} {'max µs':>10}")
    names = {
        "bar": ("per bar: features+model+decide+risk", BAR_P99_GOAL_US),
        "bar + journal": ("per bar + journal", None),
        "bar + journal (durable)": ("per bar + journal (durable)", DURABLE_P99_GOAL_US),
        "bar, order broker": ("per bar, order broker (sizes orders)", BAR_P99_GOAL_US),
        "row": ("per row of 2 symbols", None),
        "row + journal": ("per row + journal", None),
        "row + journal (durable)": ("per row + journal (durable)", DURABLE_P99_GOAL_US),
    }
    for key, (name, goal) in names.items():
        print(line(name, timings[key], goal))
    print(line("machine: fixed work of the per-bar median", timings["floor"]))
    print(line("peer per bar: pandas window + Booster", peer_bar))
    print(line("peer per row of 2 symbols", peer_row))
    by_bar = stats(peer_bar)[0] / stats(timings["bar"])[0]
    by_row = stats(peer_row)[0] / stats(timings["row"])[0]
    print(
        f"  decide_row is {by_bar:.0f}x faster than the peer per bar at p50, {by_row:.0f}x per row"
    )


def report_start(cases: dict[str, list[str]], root: Path, starts: int) -> None:
    env = dict(os.environ)
    print("start to first decision: python -m mlalgo live, spawn to the first row decided")
    for name, args in cases.items():
        runs = []
        for n in range(starts):
            state = root / f"start-{len(name)}-{n}"
            runs.append(first_decision([*args, "--state-dir", str(state)], env))
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        totals = [r["total"] for r in runs]
        verdict = "met" if med["total"] < FIRST_DECISION_GOAL_S else "NOT met"
        print(
            f"  {name}: median {med['total']:.2f} s over {starts} starts (min {min(totals):.2f},"
            f" max {max(totals):.2f}); goal < {FIRST_DECISION_GOAL_S:g} s: {verdict}"
        )
        for label, key in (
            ("spawn to Executor.start (interpreter, imports, bundle, feed)", "before"),
            ("Executor.start (warm-up from history, reconcile)", "start"),
            ("first row (decision, journal transaction)", "row"),
        ):
            print(f"    {label:<62} {med[key]:6.3f} s")
        steps = start_steps([*args, "--state-dir", str(root / f"steps-{len(name)}")])
        print(f"    the steps of one start, timed one by one (total {sum(steps.values()):.3f} s):")
        for step, seconds in steps.items():
            print(f"      {step:<60} {seconds:6.3f} s")
    paper = cases[next(iter(cases))]
    with tempfile.TemporaryDirectory() as cache:
        state = ["--state-dir", str(root / "start-cold")]
        cold = first_decision([*paper, *state], env | {"NUMBA_CACHE_DIR": cache})
    print(
        f"  first paper start after an install (empty numba cache; the backtest core compiles "
        f"at the first fill, after the first decision): {cold['total']:.2f} s"
    )


def spot_bundle(root: Path, text: str, spec) -> Path:
    """The benchmark's model again, exported for the spot pairs the exchange lists."""
    return export_bundle(
        root,
        "bench-spot",
        model_text=text,
        spec=spec,
        policy=DecisionPolicy(),
        execution=ExecutionConfig(sizing="units", unit_size=10.0),
        input_example=EXAMPLE,
        info={"symbols": SPOT, "periods_per_year": 252},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=3, help="replays per latency case")
    parser.add_argument("--starts", type=int, default=5, help="timed starts of mlalgo live")
    parser.add_argument("--peer-rows", type=int, default=300)
    args = parser.parse_args()
    bars = load_sample(SYMBOLS, root=ROOT / "data" / "sample")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle, text, spec = bundle_at(root / "models", bars)
        timings = probe_latency(bundle.path, root / "probe", args.passes)
        peer_bar, peer_row = time_peer(bars, text, spec, args.peer_rows, spec.warmup + 1)
        report_latency(timings, peer_bar, peer_row)
        spot = bars.rename(index=lambda x: f"{x}USDT", level="symbol")
        keys = root / "keys.yaml"
        keys.write_text(yaml.safe_dump({"binance": {"key_id": KEY[0], "secret": KEY[1]}}))
        keys.chmod(0o600)
        with ReplayExchange(spot, interval="1d", binance_key=KEY, cash=1e7) as exchange:
            spot_path = spot_bundle(root / "models", text, spec)
            no_state = Path("/nonexistent")  # each start passes its own --state-dir last
            cases = {
                "paper broker, replay feed": live_args(bundle.path, no_state)[:-2],
                "Binance broker, REST feed, replay exchange on loopback": exchange_args(
                    spot_path, no_state, exchange.url, keys
                )[:-2],
            }
            report_start(cases, root, args.starts)


if __name__ == "__main__":
    main()
