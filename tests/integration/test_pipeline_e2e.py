"""The default pipeline end to end on a shortened real sample, tracked in a real MLflow store."""

from __future__ import annotations

import io
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlalgo import __version__
from mlalgo.bundle import load_bundle
from mlalgo.pipeline import data_hash, load_bars, run_pipeline

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_METRICS = (
    "psr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "profit_factor",
    "hit_rate",
    "n_trades",
    "total_return",
    "buy_hold_sharpe",
    "oos_accuracy",
    "oos_auc",
    "n_folds",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_short_config):
    """The same config run twice into one store."""
    from mlalgo.config import MlflowConfig
    from mlalgo.tracking import Tracker

    tmp = tmp_path_factory.mktemp("e2e")
    tracker = Tracker(MlflowConfig(tracking_uri=f"sqlite:///{tmp}/mlruns.db", experiment="e2e"))
    cfg = make_short_config(tmp / "models")
    first = run_pipeline(cfg, tracker=tracker, root=ROOT)
    second = run_pipeline(cfg, tracker=tracker, root=ROOT)
    return cfg, tracker, first, second


def test_run_is_recorded_with_config_params_and_identity_tags(runs) -> None:
    cfg, tracker, first, _ = runs
    run = MlflowClient(tracker.tracking_uri).get_run(first.run_id)

    assert run.info.status == "FINISHED"
    assert run.data.params["stages.train.num_leaves"] == str(cfg.stages.train.num_leaves)
    assert run.data.params["stages.fetch.symbols.1"] == "MSFT"
    assert len(run.data.params) == len(cfg.flat())
    tags = run.data.tags
    assert tags["mlalgo.config_hash"] == cfg.hash
    assert tags["mlalgo.data_hash"] == data_hash(load_bars(cfg)[0])
    assert tags["mlalgo.feature_spec_hash"] == cfg.feature_spec.hash
    assert tags["mlalgo.version"] == __version__
    assert tags["mlalgo.seed"] == str(cfg.seed)
    in_git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    if in_git.returncode == 0:
        assert tags["mlalgo.git_sha"] == in_git.stdout.decode().strip()


def test_metrics_are_finite_and_cover_strategy_and_buy_and_hold(runs) -> None:
    _, tracker, first, _ = runs
    logged = MlflowClient(tracker.tracking_uri).get_run(first.run_id).data.metrics

    for key in REQUIRED_METRICS:
        assert math.isfinite(logged[key]), key
        assert logged[key] == pytest.approx(first.metrics[key]), key
    assert logged["n_trades"] > 0
    assert -1 < logged["max_drawdown"] <= 0
    assert 0 <= logged["psr"] <= 1 and 0 <= logged["buy_hold_psr"] <= 1
    assert logged["n_folds"] == len(first.folds)


def test_artifacts_hold_config_plot_fold_table_and_bundle(runs) -> None:
    _, tracker, first, _ = runs
    client = MlflowClient(tracker.tracking_uri)

    def listing(path: str = "") -> set[str]:
        return {a.path for a in client.list_artifacts(first.run_id, path)}

    assert {"config", "plots", "reports", "bundle", "data"} <= listing()
    assert "plots/equity.png" in listing("plots")
    assert {"reports/folds.csv", "reports/trades.csv"} <= listing("reports")
    assert "bundle/manifest.json" in listing("bundle")
    local = Path(client.download_artifacts(first.run_id, "reports/folds.csv"))
    folds = pd.read_csv(local)
    assert len(folds) == first.metrics["n_folds"]
    assert {"test_start", "test_end", "sharpe", "return", "buy_hold_return", "auc"} <= set(folds)
    png = Path(client.download_artifacts(first.run_id, "plots/equity.png")).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    config = Path(client.download_artifacts(first.run_id, "config/pipeline.yaml")).read_text()
    assert "num_leaves: 15" in config


def test_bundle_loads_and_matches_the_run(runs) -> None:
    cfg, _, first, second = runs
    bundle = load_bundle(first.bundle_dir)

    assert first.bundle_dir.parent == cfg.stages.export.dir / "mlalgo-signal"
    assert (first.bundle_dir.name, second.bundle_dir.name) == ("1", "2")
    m = bundle.manifest
    assert m["mlflow_run_id"] == first.run_id
    assert m["config_hash"] == cfg.hash and m["data_hash"] == first.data_hash
    assert m["metrics"]["sharpe"] == pytest.approx(first.metrics["sharpe"])
    assert m["training_range"]["start"].startswith("2003-")
    assert m["training_range"]["end"] < m["oos_range"]["end"]
    assert bundle.feature_names == cfg.feature_spec.names


def test_bundle_predictions_on_the_last_bars_are_probabilities(runs) -> None:
    _, _, first, _ = runs
    bundle = load_bundle(first.bundle_dir)
    features = first.research.features.dropna().tail(5).to_numpy()

    p = bundle.predict_proba(features)

    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()


def test_same_config_and_data_give_the_same_metrics(runs) -> None:
    _, _, first, second = runs

    assert first.run_id != second.run_id
    assert first.metrics.keys() == second.metrics.keys()
    for key, value in first.metrics.items():
        assert value == second.metrics[key] or (np.isnan(value) and np.isnan(second.metrics[key]))
    pd.testing.assert_series_equal(first.research.strategy.equity, second.research.strategy.equity)
    a = io.StringIO()
    first.folds.to_csv(a)
    b = io.StringIO()
    second.folds.to_csv(b)
    assert a.getvalue() == b.getvalue()


def test_out_of_sample_period_starts_after_the_first_training_window(runs) -> None:
    cfg, _, first, _ = runs
    start, _ = first.research.oos_range
    first_bar = load_bars(cfg)[0].index.get_level_values("time").min()

    calendar_bars_before = (load_bars(cfg)[0].index.get_level_values("time").unique() < start).sum()
    assert start > first_bar
    assert calendar_bars_before == cfg.stages.backtest.min_train_bars


def test_a_failing_stage_marks_the_run_failed(tmp_path: Path, make_short_config, tracker) -> None:
    cfg = make_short_config(tmp_path / "models", "stages.backtest.min_train_bars=5000")

    with pytest.raises(ValueError, match="min_train_bars"):
        run_pipeline(cfg, tracker=tracker, root=ROOT)

    client = MlflowClient(tracker.tracking_uri)
    exp = client.get_experiment_by_name("test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FAILED"
