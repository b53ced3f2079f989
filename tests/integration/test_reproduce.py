"""`mlalgo reproduce RUN_ID` reruns a run from what it logged and matches every metric exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mlalgo.cli import app
from mlalgo.pipeline import run_pipeline
from mlalgo.reproduce import reproduce

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_reproduces_exactly_and_records_package_versions(
    tmp_path: Path, make_short_config, tracker
) -> None:
    cfg = make_short_config(tmp_path / "models", "stages.export.enabled=false")
    run = run_pipeline(cfg, tracker=tracker, root=ROOT)

    result = reproduce(run.run_id, tracker, root=ROOT)

    assert result.ok, result.summary()
    assert len(result.logged) >= 30 and result.reproduced.keys() >= {"sharpe", "oos_auc"}
    tags = MlflowClient(tracker.tracking_uri).get_run(run.run_id).data.tags
    versions = json.loads(tags["mlalgo.versions"])
    assert {"python", "numpy", "pandas", "lightgbm", "mlflow"} <= set(versions)


def test_changed_data_is_caught_and_named(tmp_path: Path, make_short_config) -> None:
    data = tmp_path / "bars.csv"
    bars = pd.read_csv(ROOT / "data" / "sample" / "stocks_daily.csv")
    bars.to_csv(data, index=False)
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: r\n")
    cfg = make_short_config(
        tmp_path / "models",
        "stages.export.enabled=false",
        "stages.fetch.source=file",
        f"stages.fetch.path={data}",
    )
    from mlalgo.config import load_mlflow_config
    from mlalgo.tracking import Tracker

    tracker = Tracker(load_mlflow_config(tmp_path / "mlflow.yaml"), root=tmp_path)
    run = run_pipeline(cfg, tracker=tracker, root=ROOT)
    later = bars.index[(bars["Ticker"] == "MSFT") & (bars["Date"] > "2007-01-01")]
    bars.loc[later, ["Open", "High", "Low", "Close"]] *= 1.01
    bars.to_csv(data, index=False)

    result = CliRunner().invoke(
        app,
        ["reproduce", run.run_id, "--mlflow-config", str(tmp_path / "mlflow.yaml")],
        env={"MLFLOW_TRACKING_URI": ""},
    )

    assert result.exit_code == 1
    assert "the data changed since the run" in result.output
    assert "DIFFERENT" in result.output
