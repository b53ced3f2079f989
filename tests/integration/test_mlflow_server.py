"""The default pipeline tracked in a real `mlflow server` backed by a fresh PostgreSQL database,
with artifacts proxied through the server: how a team shares one tracking store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from support.postgres import PG, connect
from support.processes import free_port, stop, wait_for_health

from mlalgo.config import MlflowConfig
from mlalgo.pipeline import run_pipeline
from mlalgo.tracking import Tracker

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ("plots/equity.png", "reports/folds.csv", "bundle/manifest.json")


@pytest.fixture
def server(database: str, tmp_path: Path):
    """`mlflow server` on the test database, serving artifacts from ``tmp_path/mlartifacts``."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql+psycopg://{PG}/{database}",
            "--artifacts-destination",
            str(tmp_path / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            base,
            proc,
            "mlflow server",
            lambda: (tmp_path / "server.log").read_text(errors="replace"),
        )
        yield base
    finally:
        stop(proc)
        log.close()


def test_pipeline_tracks_into_a_postgres_backed_server(
    server: str, database: str, tmp_path: Path, make_short_config
) -> None:
    cfg = make_short_config(tmp_path / "models")
    tracker = Tracker(MlflowConfig(tracking_uri=server, experiment="team"), root=tmp_path)

    result = run_pipeline(cfg, tracker=tracker, root=ROOT)

    client = MlflowClient(server)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{cfg.name}-{cfg.hash[:8]}"
    assert run.data.metrics["sharpe"] == pytest.approx(result.metrics["sharpe"])
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith(
        "mlflow-artifacts:/"
    )

    listed = {
        f.path
        for folder in ("plots", "reports", "bundle")
        for f in client.list_artifacts(result.run_id, folder)
    }
    assert set(ARTIFACTS) <= listed
    downloaded = {}
    for path in ARTIFACTS:
        dst = tmp_path / "downloads" / path.replace("/", "_")
        dst.mkdir(parents=True)
        local = Path(client.download_artifacts(result.run_id, path, str(dst)))
        downloaded[path] = local.read_bytes()
        assert downloaded[path], path
        # the server stored the file it proxied under --artifacts-destination
        (stored,) = (tmp_path / "mlartifacts").glob(f"*/{result.run_id}/artifacts/{path}")
        assert stored.read_bytes() == downloaded[path], path
    assert downloaded["plots/equity.png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads(downloaded["bundle/manifest.json"])

    with connect(database) as conn:
        row = conn.execute(
            "SELECT status, name, experiment_id FROM runs WHERE run_uuid = %s",
            (result.run_id,),
        ).fetchone()
        sharpe = conn.execute(
            "SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'sharpe'",
            (result.run_id,),
        ).fetchone()
    assert row == ("FINISHED", run.info.run_name, int(run.info.experiment_id))
    assert sharpe is not None
    assert sharpe[0] == pytest.approx(result.metrics["sharpe"])
