"""The scheduler drives three nightly retrain cycles on real bars, new bars appended between
them: each fire runs `mlalgo run pipelines/retrain.yaml` as a process, registers a version and
lets the gate decide; the registry, the decisions and the history must tell the same story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml
from support.retrain import NAME, RETRAIN_YAML, retrain_overrides, write_bars

from mlalgo.config import MlflowConfig, load_pipeline
from mlalgo.promotion import judge
from mlalgo.registry import CHAMPION
from mlalgo.schedule import Scheduler, Status
from mlalgo.schedule.job import load_job
from mlalgo.tracking import Tracker

# Bars known at each nightly fire, and what the gate must decide on them.
CYCLES = (
    ("2007-06-30", "promote", "1"),  # the first version only needs the sanity gates
    ("2007-12-31", "promote", "2"),  # beats v1 on the second half of 2007
    ("2008-06-30", "reject", "2"),  # beats v2, but its deflated Sharpe is below 0.5
)
MONDAY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_three_scheduled_retrain_cycles(tmp_path: Path, sample_bars: pd.DataFrame) -> None:
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    mlflow_yaml = tmp_path / "mlflow.yaml"
    mlflow_yaml.write_text(yaml.safe_dump({"tracking_uri": uri, "experiment": "nightly"}))
    bars_file = tmp_path / "bars.csv"
    cfg = load_pipeline(
        RETRAIN_YAML, [*retrain_overrides(tmp_path, bars_file), "schedule.retries=0"]
    )
    pipeline = tmp_path / "retrain.yaml"
    pipeline.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    scheduler = Scheduler(
        [load_job(pipeline)], tmp_path / "state", root=tmp_path, mlflow_config=mlflow_yaml
    )
    client = Tracker(MlflowConfig(tracking_uri=uri, experiment="nightly")).client()

    assert scheduler.tick(MONDAY) == []  # first sight: tracking starts, nothing runs
    for day, (end, verdict, champion) in enumerate(CYCLES):
        write_bars(sample_bars, bars_file, end)
        fire = MONDAY.replace(hour=22) + timedelta(days=day)
        assert scheduler.due(fire - timedelta(minutes=1)) == []

        started = scheduler.tick(fire + timedelta(minutes=1))
        scheduler.wait()

        assert [job.name for job in started] == ["retrain"]
        assert scheduler.tick(fire + timedelta(minutes=2)) == []  # a fire runs once
        record = scheduler.history.last("retrain")
        assert record.status == Status.OK, record.message
        assert record.scheduled_for == fire and record.message == f"decision: {verdict}"
        version = client.get_model_version(NAME, str(day + 1))
        assert version.tags["mlalgo.decision"] == verdict
        assert client.get_run(record.mlflow_run_id).data.tags["mlalgo.model_version"] == (
            f"{NAME}/{day + 1}"
        )
        aliases = client.get_registered_model(NAME).aliases
        assert {k: str(v) for k, v in aliases.items()} == {
            CHAMPION: champion,
            "challenger": str(day + 1),
        }

    runs = client.search_runs(
        [client.get_experiment_by_name("nightly").experiment_id],
        "tags.`mlalgo.kind` = 'promotion'",
        order_by=["attribute.start_time ASC"],
    )
    assert [r.data.tags["mlalgo.decision"] for r in runs] == [v for _, v, _ in CYCLES]
    assert [r.data.tags["mlalgo.champion_version"] for r in runs] == ["", "1", "2"]
    for run in runs:  # each verdict follows from the metrics it logged
        m = run.data.metrics
        mine = {k[11:]: v for k, v in m.items() if k.startswith("challenger_")}
        theirs = {k[9:]: v for k, v in m.items() if k.startswith("champion_")}
        assert judge(mine, theirs or None, cfg.stages.promote)[0] == (
            run.data.tags["mlalgo.decision"] == "promote"
        )
    assert "min_dsr" in runs[2].data.tags["mlalgo.reason"]
    history = scheduler.history.runs("retrain")
    assert [r.status for r in history] == [Status.OK] * 3
    assert all(Path(r.log_path).is_file() for r in history)
