"""A planted API key never leaves memory: not in output, logs, the store or MLflow.

Fetches (one succeeding, one refused) and a whole pipeline run against the replay exchange's
Alpaca API, at debug log level; then every byte written is searched for the key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlalgo.cli import app
from mlalgo.data.exchange import FaultSpec, ReplayExchange
from mlalgo.data.files import read_bar_file

ROOT = Path(__file__).resolve().parents[2]
KEY_ID = "PKPLANTEDKEYID12345"
SECRET = "planted-secret-6f1d2c9b8a7e"


def creds_file(path: Path, secret: str) -> Path:
    path.write_text(f"alpaca:\n  key_id: {KEY_ID}\n  secret: {secret}\n")
    path.chmod(0o600)
    return path


def test_planted_key_is_found_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = creds_file(tmp_path / "alpaca.yaml", SECRET)
    bad = creds_file(tmp_path / "wrong.yaml", "wrong-secret-value-000")
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: s\n")
    bars = read_bar_file(ROOT / "data" / "sample" / "stocks_daily.csv")
    runner = CliRunner()
    outputs = []
    faults = FaultSpec(rate_5xx=0.05, rate_429=0.05, retry_after=0, seed=9)
    with ReplayExchange(bars, interval="1d", alpaca_key=(KEY_ID, SECRET), faults=faults) as ex:
        common = [
            "--source",
            "alpaca",
            "--symbols",
            "MSFT",
            "--start",
            "2004-01-01",
            "--end",
            "2008-12-31",
            "--base-url",
            ex.url,
            "--store",
            str(tmp_path / "bars"),
        ]
        ok = runner.invoke(app, ["-v", "fetch", *common, "--credentials", str(good)])
        refused = runner.invoke(app, ["-v", "fetch", *common, "--credentials", str(bad)])
        env = runner.invoke(
            app,
            ["-v", "fetch", *common[:-2], "--store", str(tmp_path / "b2")],
            env={"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET},
        )
        sets = [
            "stages.fetch.source=alpaca",
            f"stages.fetch.base_url={ex.url}",
            f"stages.fetch.credentials={good}",
            f"stages.fetch.store={tmp_path / 'bars'}",
            "stages.fetch.symbols=[MSFT]",
            "stages.fetch.start=2004-01-01",
            "stages.fetch.end=2008-12-31",
            "stages.backtest.min_train_bars=252",
            "stages.backtest.retrain_every=252",
            "stages.train.n_estimators=20",
            f"stages.export.dir={tmp_path / 'models'}",
            f"stages.backtest.report_dir={tmp_path / 'reports'}",
        ]
        args = [
            "-v",
            "run",
            str(ROOT / "pipelines" / "train.yaml"),
            "--mlflow-config",
            str(tmp_path / "mlflow.yaml"),
        ]
        for item in sets:
            args += ["--set", item]
        run = runner.invoke(app, args, env={"MLFLOW_TRACKING_URI": ""})
        outputs = [ok, refused, env, run]

    assert ok.exit_code == 0, ok.output
    assert env.exit_code == 0, env.output
    assert refused.exit_code == 2 and "HTTP 403" in refused.output
    assert run.exit_code == 0, run.output
    assert (tmp_path / "runs.db").exists() and (tmp_path / "bars" / "alpaca" / "MSFT").is_dir()
    written = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name not in ("alpaca.yaml", "wrong.yaml")
    ]
    assert len(written) > 10
    assert "alpaca MSFT 1d" in caplog.text, "the logs searched below must hold the fetches"
    for needle in (SECRET, KEY_ID):
        for result in outputs:
            assert needle not in result.output
            assert result.exception is None or needle not in repr(result.exception)
        assert needle not in caplog.text
        hits = [p for p in written if needle.encode() in p.read_bytes()]
        assert hits == [], f"{needle} written to {hits}"
