"""`mlalgo schedule` as a person runs it: --once, --history, and errors that name the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from support.retrain import RETRAIN_YAML


def mlalgo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlalgo", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_once_runs_now_records_history_and_never_retries_a_config_error(tmp_path: Path) -> None:
    doc = yaml.safe_load(RETRAIN_YAML.read_text())
    doc["stages"]["fetch"] |= {"source": "file", "path": str(tmp_path / "missing.csv")}
    doc["schedule"] |= {"retries": 3, "retry_delay_seconds": 0}
    pipeline = tmp_path / "retrain.yaml"
    pipeline.write_text(yaml.safe_dump(doc))

    once = mlalgo("schedule", str(pipeline), "--once", cwd=tmp_path)
    shown = mlalgo("schedule", str(pipeline), "--history", cwd=tmp_path)

    assert once.returncode == 1, once.stderr
    lines = [line for line in shown.stdout.splitlines() if "retrain" in line]
    assert len(lines) == 1 and "failed" in lines[0]  # exit 2: one attempt, no retries
    assert "error:" in lines[0]  # the message column: the tail of the log, truncated
    logs = list((tmp_path / ".mlalgo" / "schedule" / "logs" / "retrain").glob("*.log"))
    assert len(logs) == 1 and "missing.csv" in logs[0].read_text()


def test_a_pipeline_without_a_cron_cannot_be_scheduled(tmp_path: Path) -> None:
    train = RETRAIN_YAML.parent / "train.yaml"

    out = mlalgo("schedule", str(train), cwd=tmp_path)

    assert out.returncode == 2
    assert f"{train}: schedule.cron: required to schedule this pipeline" in out.stderr


def test_a_bad_cron_names_the_file_and_key(tmp_path: Path) -> None:
    doc = yaml.safe_load(RETRAIN_YAML.read_text())
    doc["schedule"]["cron"] = "0 25 * * *"
    pipeline = tmp_path / "retrain.yaml"
    pipeline.write_text(yaml.safe_dump(doc))

    out = mlalgo("schedule", str(pipeline), cwd=tmp_path)

    assert out.returncode == 2
    assert f"{pipeline}: schedule.cron: '0 25 * * *' is not a valid cron expression" in out.stderr
