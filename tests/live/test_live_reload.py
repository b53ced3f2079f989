"""Hot reload against a real MLflow registry: ``@champion`` moved mid-session swaps the model
between rows, with the features' state kept and the positions untouched, while the registry
check runs beside the loop (it spawns a process that imports MLflow, which takes seconds). A
check that fails leaves the running model in place. The live process never imports MLflow."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.processes import free_port

from mlalgo.bundle import Bundle, export_bundle, load_bundle
from mlalgo.config import CostConfig, ExecutionConfig, MlflowConfig, load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.config import load_live_config
from mlalgo.live.executor import Executor
from mlalgo.live.feeds.replay import ReplayFeed
from mlalgo.live.journal import Journal
from mlalgo.live.paper_broker import PaperBroker
from mlalgo.live.resolve import resolve
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy
from mlalgo.registry import CHAMPION, MANIFEST_TAG, register_bundle
from mlalgo.scoring import score
from mlalgo.tracking import Tracker

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "stocks_daily.csv"
SYMBOLS = ["AAPL", "MSFT"]
START, END = "2009-01-02", "2011-12-30"
NAME = "sig"
MODEL = f"models:/{NAME}@{CHAMPION}"
# registry version: (trees, seed, threshold); the bundles are exported in this order, so each
# one's own version (its journal tag "sig/N") is its registry version
VERSIONS = {"1": (20, 1, 0.5), "2": (60, 7, 0.52), "3": (10, 3, 0.5)}
BROKEN = "3"  # registered with a manifest tag its bundle does not match


def ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


@dataclass(frozen=True)
class Registry:
    mlflow_yaml: Path
    tracker: Tracker
    bundles: dict[str, Path]  # registry version -> the exported folder

    def point(self, version: str) -> None:
        """Move ``@champion``, as ``mlalgo promote`` or ``rollback`` would."""
        self.tracker.client().set_registered_model_alias(NAME, CHAMPION, version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, sample_bars: pd.DataFrame) -> Registry:
    """Three differently trained bundles registered as versions 1-3 of ``sig``, the way the
    pipeline registers them: each logged into its own run."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlruns.db"
    mlflow_yaml = root / "mlflow.yaml"
    mlflow_yaml.write_text(yaml.safe_dump({"tracking_uri": uri, "experiment": "reload"}))
    tracker = Tracker(MlflowConfig(tracking_uri=uri, experiment="reload"), root=root)
    spec = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
    train = sample_bars.loc[SYMBOLS]
    train = train.loc[train.index.get_level_values("time") < pd.Timestamp(START, tz="UTC")]
    x, y = compute(spec, train), make_labels(train, horizon=1)["y"]
    keep = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    bundles = {}
    for version, (trees, seed, threshold) in VERSIONS.items():
        clf = LightGBMSignalClassifier(n_estimators=trees, random_state=seed).fit(x[keep], y[keep])
        folder = export_bundle(
            root / "models",
            NAME,
            model_text=clf.booster_.model_to_string(),
            spec=spec,
            policy=DecisionPolicy(long_threshold=threshold, allow_short=False),
            execution=ExecutionConfig(costs=CostConfig(commission_bps=5.0)),
            input_example=[
                {"time": "2008-12-31T00:00:00+00:00", "symbol": "AAPL", "open": 1.0}
                | {"high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
            ],
            info={"symbols": SYMBOLS, "periods_per_year": 252},
        )
        assert folder.name == version
        with tracker.run(f"train-{version}", {}) as run:
            register_bundle(tracker, run.run_id, folder, NAME, CHAMPION if version == "1" else None)
        bundles[version] = folder
    tracker.client().set_model_version_tag(NAME, BROKEN, MANIFEST_TAG, "0" * 64)
    return Registry(mlflow_yaml, tracker, bundles)


@pytest.fixture(scope="module")
def scored(
    registry: Registry, sample_bars: pd.DataFrame
) -> Callable[[str, pd.DataFrame], pd.DataFrame]:
    """``scored(version, decisions)``: what that version's batch scoring, with features over
    the whole history, gives for the journalled decisions' bars."""
    bars = sample_bars.loc[SYMBOLS]
    bars = bars.loc[bars.index.get_level_values("time") <= pd.Timestamp(END, tz="UTC")]
    scores = {v: score(load_bundle(path), bars) for v, path in registry.bundles.items()}

    def scored_(version: str, decisions: pd.DataFrame) -> pd.DataFrame:
        times = pd.to_datetime(decisions["open_ms"], unit="ms", utc=True)
        index = pd.MultiIndex.from_arrays([decisions["symbol"], times])
        return scores[version].reindex(index)

    return scored_


def journalled(path: Path) -> pd.DataFrame:
    """The journal's decisions, oldest row first (readable while another process writes)."""
    if not path.exists():
        return pd.DataFrame(columns=["symbol", "open_ms", "p_up", "target", "bundle"])
    with closing(sqlite3.connect(path, timeout=10)) as db:
        rows = db.execute(
            "SELECT symbol, open_ms, p_up, target, bundle FROM decisions ORDER BY open_ms, symbol"
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["symbol", "open_ms", "p_up", "target", "bundle"])
    return frame.astype({"p_up": float, "target": float})


def assert_swapped_once_between_rows(decisions: pd.DataFrame) -> tuple[int, int]:
    """Every row decided by one model, ``sig/1`` rows then ``sig/2`` rows; their counts."""
    per_row = decisions.groupby("open_ms")["bundle"].agg(["unique", "size"])
    assert (per_row["size"] == len(SYMBOLS)).all()
    assert all(len(u) == 1 for u in per_row["unique"]), "a row mixes two models"
    tags = [u[0] for u in per_row["unique"]]
    first = tags.count(f"{NAME}/1")
    assert tags == [f"{NAME}/1"] * first + [f"{NAME}/2"] * (len(tags) - first)
    return first, len(tags) - first


def assert_decided_by(
    version: str, decisions: pd.DataFrame, scored: Callable[[str, pd.DataFrame], pd.DataFrame]
) -> None:
    want = scored(version, decisions)
    assert not want["p_up"].isna().any()  # warmed up: every decision is a model's
    np.testing.assert_allclose(decisions["p_up"], want["p_up"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(decisions["target"], want["weight"], rtol=0, atol=1e-9)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.05)


# -- the `mlalgo live` process --------------------------------------------------------------

LIVE_SCRIPT = """
import json, sys
from mlalgo.live.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("pandas", "mlflow", "optuna", "sklearn", "lightgbm") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_mlalgo_live_swaps_to_the_new_champion_between_rows(
    tmp_path: Path, registry: Registry, scored: Callable[[str, pd.DataFrame], pd.DataFrame]
) -> None:
    """``mlalgo live --model models:/sig@champion`` on the paced sample; ``@champion`` moves
    from v1 to v2 after 30 rows; SIGTERM once v2 has decided 10 rows."""
    registry.point("1")
    live_yaml = tmp_path / "live.yaml"
    live_yaml.write_text(
        yaml.safe_dump(
            {
                "model": MODEL,
                "symbols": SYMBOLS,
                "state_dir": str(tmp_path / "state"),
                "durable": False,
                "row_wait": 0.0,
                "reload_every": 1.0,
                "feed": {"kind": "replay", "path": str(SAMPLE), "start": START, "end": END}
                | {"pace": 0.05},  # 756 rows over about 38 s
                "broker": {"kind": "paper"},
            }
        )
    )
    journal = tmp_path / "state" / NAME / "journal.db"
    out, err = tmp_path / "live.out", tmp_path / "live.err"
    args = ["--config", str(live_yaml), "--mlflow-config", str(registry.mlflow_yaml)]
    with out.open("w") as stdout, err.open("w") as stderr:
        # cwd: the resolved bundles are cached under ./.mlalgo/bundles
        proc = subprocess.Popen(
            [sys.executable, "-c", LIVE_SCRIPT, *args], stdout=stdout, stderr=stderr, cwd=tmp_path
        )
        try:
            live = lambda: proc.poll() is None  # noqa: E731
            wait_for(lambda: not live() or len(journalled(journal)) >= 30 * 2, 120, "30 rows")
            assert live(), err.read_text()[-3000:]
            registry.point("2")
            moved_after = int(journalled(journal)["open_ms"].max())

            def v2_rows() -> bool:
                return (journalled(journal)["bundle"] == f"{NAME}/2").sum() >= 10 * 2

            wait_for(lambda: not live() or v2_rows(), 120, "10 rows of v2")
            assert live(), f"the feed ended before the swap:\n{err.read_text()[-3000:]}"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, err.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert json.loads(out.read_text().strip().splitlines()[-1]) == {"code": 0, "heavy": []}
    events = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    swaps = [e for e in events if e["event"] == "model_swapped"]
    assert names[0] == "started" and events[0]["model"] == f"{NAME}/1" and names[-1] == "stopped"
    assert [(e["old"], e["new"]) for e in swaps] == [(f"{NAME}/1", f"{NAME}/2")]
    assert "reload_failed" not in names

    decisions = journalled(journal)
    v1_rows, v2_count = assert_swapped_once_between_rows(decisions)
    assert v1_rows >= 30 and v2_count >= 10
    early = decisions.iloc[: 2 * v1_rows].reset_index(drop=True)
    late = decisions.iloc[2 * v1_rows :].reset_index(drop=True)
    assert late["open_ms"].min() > moved_after
    assert_decided_by("1", early, scored)
    # the features carried on across the swap: v2 decides as if it had seen every bar
    assert_decided_by("2", late, scored)
    assert np.abs(late["p_up"] - scored("1", late)["p_up"].to_numpy()).max() > 1e-3  # differ


# -- the executor driven by hand ------------------------------------------------------------


def by_hand(tmp_path: Path, mlflow_yaml: Path, reload: Callable[[], Bundle | None]) -> Executor:
    """An executor over the sample (unpaced) and the paper broker, its model resolved from
    ``@champion`` through the registry, as :class:`~mlalgo.live.session.Session` does."""
    cfg = load_live_config(None, {"state_dir": str(tmp_path / "state"), "durable": False,
                                  "row_wait": 0.0, "reload_every": 0.5})  # fmt: skip
    bundle = resolve(MODEL, mlflow_config=mlflow_yaml, cache=tmp_path / "cache")
    feed = ReplayFeed(SAMPLE, SYMBOLS, start_ms=ms(START), end_ms=ms(END) + 86_400_000)
    journal = Journal(cfg.journal_path(NAME), durable=False)
    broker = PaperBroker(bundle.execution, SYMBOLS, cash=100_000.0, periods_per_year=252)
    ex = Executor(cfg, bundle, feed, broker, journal, strategy=NAME, symbols=SYMBOLS, reload=reload)
    ex.start(first_ms=ms(START))
    return ex


def step(ex: Executor, *, reload: bool = True) -> None:
    """One turn of the loop: the next row, then (between rows) the reload check."""
    for bar in ex.feed.poll(0.0):
        ex.offer(bar)
    ex.process_ready()
    if reload:
        ex.maybe_reload()


def book(ex: Executor) -> dict[str, Any]:
    return {
        "journal": ex.journal.positions(),
        "broker": ex.broker.account().positions,
        "fills": ex.journal.fills(),
        "open_intents": ex.journal.open_intents(),
        "rows": ex.stats.rows,
    }


def test_rows_go_on_while_the_check_runs_and_the_swap_keeps_positions(
    tmp_path: Path, registry: Registry, scored: Callable[[str, pd.DataFrame], pd.DataFrame]
) -> None:
    registry.point("1")
    asked, gate = threading.Event(), threading.Event()

    def reload() -> Bundle:  # the real lookup, held at a gate the test opens
        asked.set()
        if not gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return resolve(MODEL, mlflow_config=registry.mlflow_yaml, cache=tmp_path / "cache")

    ex = by_hand(tmp_path, registry.mlflow_yaml, reload)
    for _ in range(20):
        step(ex, reload=False)
    registry.point("2")
    wait_for(lambda: (ex.maybe_reload(), asked.is_set())[1], 30, "registry check")

    for _ in range(40):  # the check is in flight: rows go on, with the model they started with
        step(ex)
    assert ex.stats.rows == 60 and ex.bundle.version == 1
    wait_for(lambda: (step(ex), any(ex.journal.positions().values()))[1], 30, "position")
    before = book(ex)
    gate.set()
    wait_for(lambda: (ex.maybe_reload(), ex.bundle.version == 2)[1], 60, "swap")

    assert book(ex) == before  # the swap itself trades nothing
    assert ex.stats.reloads == 1
    for _ in range(100):
        step(ex, reload=False)
    decisions = journalled(ex.journal.path)
    v1_rows, v2_rows = assert_swapped_once_between_rows(decisions)
    assert v1_rows == before["rows"] and v2_rows == 100
    assert_decided_by("1", decisions.iloc[: 2 * v1_rows], scored)
    assert_decided_by("2", decisions.iloc[2 * v1_rows :], scored)
    ex.journal.close()


def _unreachable(mlflow_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The registry's server is gone: nothing listens where the tracking URI points."""
    mlflow_yaml.write_text(
        yaml.safe_dump({"tracking_uri": f"http://127.0.0.1:{free_port()}", "experiment": "x"})
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return "Connection refused|Max retries"


@pytest.mark.parametrize("failure", ["bundle fails verification", "registry unreachable"])
def test_a_failed_reload_is_logged_and_the_old_model_trades_on(
    tmp_path: Path,
    registry: Registry,
    scored: Callable[[str, pd.DataFrame], pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    caplog.set_level(logging.INFO, logger="mlalgo.live")
    registry.point("1")
    mlflow_yaml = tmp_path / "mlflow.yaml"  # this session's copy
    shutil.copy(registry.mlflow_yaml, mlflow_yaml)

    ex = by_hand(
        tmp_path,
        mlflow_yaml,
        lambda: resolve(MODEL, mlflow_config=mlflow_yaml, cache=tmp_path / "cache"),
    )
    for _ in range(20):
        step(ex, reload=False)
    if failure == "registry unreachable":
        expected = _unreachable(mlflow_yaml, monkeypatch)
    else:
        registry.point(BROKEN)
        expected = f"differs from the registry's {MANIFEST_TAG}"

    def failed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", None) == "reload_failed"]

    wait_for(lambda: (step(ex), bool(failed()))[1], 120, "reload_failed")
    at_failure = ex.stats.rows
    for _ in range(50):
        step(ex, reload=False)

    [record] = failed()
    assert record.levelno == logging.ERROR
    assert re.search(expected, record.fields["error"])  # type: ignore[attr-defined]
    assert ex.bundle.version == 1 and ex.stats.reloads == 0
    assert ex.stats.rows == at_failure + 50
    assert not [r for r in caplog.records if getattr(r, "event", None) == "model_swapped"]
    decisions = journalled(ex.journal.path)
    assert set(decisions["bundle"]) == {f"{NAME}/1"}
    assert_decided_by("1", decisions, scored)
    ex.journal.close()
