"""Backtest = live: the sample replayed through the executor and the paper broker gives the
backtest's fills, trades, positions and equity; a restart from the journal changes nothing;
the live path loads no pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest import run
from mlalgo.bundle import export_bundle, load_bundle
from mlalgo.config import BacktestConfig, CostConfig, ExecutionConfig, RiskConfig, load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.config import load_live_config
from mlalgo.live.executor import Executor
from mlalgo.live.feeds.replay import ReplayFeed
from mlalgo.live.journal import Journal
from mlalgo.live.paper_broker import PaperBroker
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy
from mlalgo.scoring import score

ROOT = Path(__file__).resolve().parents[2]
TRAIN_YAML = ROOT / "pipelines" / "train.yaml"
SAMPLE = ROOT / "data" / "sample" / "stocks_daily.csv"
SYMBOLS = ["AAPL", "MSFT"]
START, END = "2009-01-02", "2011-12-30"
POLICY = DecisionPolicy(long_threshold=0.51, short_threshold=0.49, allow_short=True)
EXECUTIONS = {
    "fraction, costs": ExecutionConfig(
        costs=CostConfig(commission_bps=5.0, slippage_bps=2.0, slippage_vol=0.1)
    ),
    "whole, stops and limits": ExecutionConfig(
        sizing="whole",
        costs=CostConfig(commission_bps=1.0, slippage_bps=1.0),
        risk=RiskConfig(stop_loss=0.03, take_profit=0.08, max_position=0.6, max_daily_loss=0.04),
    ),
    "units at the close": ExecutionConfig(fill="close", sizing="units", unit_size=100.0),
}


@pytest.fixture(scope="module")
def model_text(sample_bars: pd.DataFrame) -> str:
    spec = load_pipeline(TRAIN_YAML).feature_spec
    bars = sample_bars.loc[SYMBOLS]
    bars = bars.loc[bars.index.get_level_values("time") < pd.Timestamp(START, tz="UTC")]
    x, y = compute(spec, bars), make_labels(bars, horizon=1)["y"]
    mask = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    clf = LightGBMSignalClassifier(n_estimators=40).fit(x[mask], y[mask])
    return clf.booster_.model_to_string()


def make_bundle(root: Path, model_text: str, execution: ExecutionConfig):
    path = export_bundle(
        root,
        "paper",
        model_text=model_text,
        spec=load_pipeline(TRAIN_YAML).feature_spec,
        policy=POLICY,
        execution=execution,
        input_example=[
            {"time": "2008-12-31T00:00:00+00:00", "symbol": "AAPL", "open": 1.0, "high": 1.0}
            | {"low": 1.0, "close": 1.0, "volume": 1.0}
        ],
        info={"symbols": SYMBOLS, "periods_per_year": 252},
    )
    return load_bundle(path)


def live_session(tmp_path: Path, bundle, *, stop_after: int | None = None) -> Executor:
    cfg = load_live_config(None, {"state_dir": str(tmp_path / "state"), "durable": False,
                                  "row_wait": 0.0, "reload_every": None})  # fmt: skip
    start = int(pd.Timestamp(START, tz="UTC").value // 1_000_000)
    end = int(pd.Timestamp(END, tz="UTC").value // 1_000_000) + 86_400_000  # exclusive
    feed = ReplayFeed(SAMPLE, SYMBOLS, start_ms=start, end_ms=end)
    journal = Journal(cfg.journal_path("paper"), durable=False)
    broker = PaperBroker(bundle.execution, SYMBOLS, cash=100_000.0, periods_per_year=252)
    ex = Executor(cfg, bundle, feed, broker, journal, strategy="paper", symbols=SYMBOLS)
    ex.start(first_ms=start)
    if stop_after is None:
        ex.run(poll_timeout=0.0)
    else:
        while ex.stats.rows < stop_after:
            for bar in feed.poll(0.0):
                ex.offer(bar)
            ex.process_ready()
    return ex


def backtest(bundle, sample_bars: pd.DataFrame):
    bars = sample_bars.loc[SYMBOLS]
    times = bars.index.get_level_values("time")
    end = pd.Timestamp(END, tz="UTC")
    bars = bars.loc[times <= end]
    weights = score(bundle, bars)["weight"]
    inside = bars.index.get_level_values("time") >= pd.Timestamp(START, tz="UTC")
    cfg = BacktestConfig().with_execution(bundle.execution)
    return run(bars.loc[inside], weights.loc[inside], cfg, periods_per_year=252, buy_hold=False)


@pytest.mark.parametrize("name", list(EXECUTIONS))
def test_replay_through_the_paper_broker_equals_the_backtest(
    tmp_path: Path, model_text: str, sample_bars: pd.DataFrame, name: str
) -> None:
    bundle = make_bundle(tmp_path / "models", model_text, EXECUTIONS[name])
    ex = live_session(tmp_path, bundle)
    result = backtest(bundle, sample_bars)
    sim = result.sim
    assert ex.stats.rows == len(sim.equity) and ex.stats.rejected == 0

    fills = ex.journal.fills()
    assert len(fills) == len(sim.fills) > 10
    got = np.array([[f[2], f[3], f[4]] for f in fills])
    want = np.column_stack([sim.fills.units, sim.fills.price, sim.fills.commission])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert [f[1] for f in fills] == [SYMBOLS[a] for a in sim.fills.asset]

    broker = ex.broker
    assert isinstance(broker, PaperBroker)
    np.testing.assert_allclose(broker.sim.history()[0], sim.equity, rtol=1e-9)
    final = sim.units[-1]
    positions = ex.journal.positions()
    for i, symbol in enumerate(SYMBOLS):
        assert positions.get(symbol, 0.0) == pytest.approx(final[i], rel=1e-9, abs=1e-9)
    trades = broker.sim.trades(final=True)
    np.testing.assert_allclose(trades[:, 7], sim.trades.pnl, rtol=1e-9, atol=1e-6)


def test_a_restart_from_the_journal_continues_the_same_session(
    tmp_path: Path, model_text: str
) -> None:
    """Stopped after 200 rows and started again on the same journal: the same end as one run."""
    bundle = make_bundle(tmp_path / "models", model_text, EXECUTIONS["fraction, costs"])
    whole = live_session(tmp_path / "whole", bundle)
    first = live_session(tmp_path / "split", bundle, stop_after=200)
    first.journal.close()
    second = live_session(tmp_path / "split", bundle)
    assert second.stats.rows == whole.stats.rows - 200
    assert second.journal.fills() == whole.journal.fills()
    assert second.broker.equity == whole.broker.equity


LIVE_SCRIPT = """
import json, sys
from mlalgo.live.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("pandas", "mlflow", "optuna", "sklearn", "lightgbm") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_mlalgo_live_replays_the_sample_without_pandas(tmp_path: Path, model_text: str) -> None:
    bundle = make_bundle(tmp_path / "models", model_text, EXECUTIONS["fraction, costs"])
    state = tmp_path / "state"
    args = ["--model", str(bundle.path), "--feed", "replay", "--broker", "paper",
            "--path", str(SAMPLE), "--start", START, "--end", END, "--state-dir", str(state),
            "--symbols", ",".join(SYMBOLS)]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", LIVE_SCRIPT, *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"code": 0, "heavy": []}
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names[0] == "started" and names[-1] == "stopped" and "fill" in names
    status = subprocess.run([sys.executable, "-m", "mlalgo", "live", "status", "--state-dir",
                             str(state)], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["open_intents"] == [] and set(body["positions"]) <= set(SYMBOLS)
