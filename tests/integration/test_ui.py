"""`mlalgo ui` (what `make ui` runs) serves this project's runs and their artifacts over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from support.processes import free_port, wait_for_health

from mlalgo.config import MlflowConfig
from mlalgo.tracking import Tracker


def get(url: str, data: dict | None = None) -> bytes:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


@pytest.fixture
def ui(tmp_path: Path):
    """A store with one run holding a CSV artifact, and the UI serving it."""
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///ui.db\nexperiment: ui\n")
    tracker = Tracker(MlflowConfig(tracking_uri="sqlite:///ui.db", experiment="ui"), tmp_path)
    with tracker.run("r", {"mlalgo.config_hash": "h"}) as run:
        run.metrics({"sharpe": 0.5})
        run.frame_csv(pd.DataFrame({"fold": [0, 1]}), "reports/folds.csv")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = "/usr/bin:/bin"  # as in a shell where the environment is not activated
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlalgo.cli",
            "ui",
            "--port",
            str(port),
            "--mlflow-config",
            str(tmp_path / "mlflow.yaml"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            base, proc, "mlalgo ui", lambda: proc.stdout.read().decode() if proc.stdout else ""
        )
        yield base, run.run_id, run.experiment_id
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_ui_lists_the_run_and_serves_its_artifacts(ui) -> None:
    base, run_id, experiment_id = ui

    found = json.loads(
        get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})
    )
    csv = get(f"{base}/get-artifact?path=reports/folds.csv&run_uuid={run_id}").decode()

    (run,) = found["runs"]
    assert run["info"]["run_id"] == run_id
    assert {"key": "sharpe", "value": 0.5}.items() <= run["data"]["metrics"][0].items()
    assert csv.splitlines() == ["fold", "0", "1"]
