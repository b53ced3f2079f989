"""The mlalgo command as a user types it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlalgo.cli import app, summary_table

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TRAIN_YAML = ROOT / "pipelines" / "train.yaml"
SHORT = [
    "stages.fetch.symbols=[AAPL, MSFT]",
    "stages.fetch.start=2004-01-01",
    "stages.fetch.end=2007-12-31",
    "stages.backtest.min_train_bars=252",
    "stages.backtest.retrain_every=252",
    "stages.train.n_estimators=30",
]


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[object, Path]:
    """``mlalgo run`` on a shortened default pipeline, with its own mlflow.yaml."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: cli\n")
    args = ["run", str(TRAIN_YAML), "--mlflow-config", str(tmp / "mlflow.yaml")]
    for item in [
        *SHORT,
        f"stages.fetch.path={SAMPLE}",
        f"stages.export.dir={tmp / 'models'}",
        f"stages.backtest.report_dir={tmp / 'reports'}",
    ]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": ""})
    return result, tmp


def test_run_prints_summary_and_where_to_look(ran) -> None:
    result, tmp = ran

    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"out-of-sample 2005-\d\d-\d\d \.\. 2007-12-31", out)
    assert "strategy" in out and "buy & hold" in out and "Sharpe" in out
    assert f"sqlite:///{tmp}/runs.db" in out
    assert "make ui" in out
    assert re.search(r"bundle\s+\S+/models/mlalgo-signal/1", out)
    assert (tmp / "runs.db").exists() and (tmp / "mlartifacts").is_dir()


def test_predict_prints_the_last_bar_signal_per_symbol(ran, tmp_path: Path) -> None:
    _, tmp = ran
    bars = pd.read_csv(SAMPLE / "stocks_daily.csv")
    msft = bars[bars["Ticker"] == "MSFT"].drop(columns="Ticker").tail(300)
    path = tmp_path / "msft.csv"
    msft.to_csv(path, index=False)

    result = CliRunner().invoke(
        app, ["predict", "--bundle", str(tmp / "models/mlalgo-signal/1"), "--bars", str(path)]
    )

    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"MSFT  2013-03-01  p_up=0\.\d{4}  target=[+-]\d\.\d\d  "
        r"\((long|flat|short), [+-]\d\.\d\d of the account\)\n",
        result.output,
    )


def test_predict_with_too_little_history_says_how_much_is_needed(ran, tmp_path: Path) -> None:
    _, tmp = ran
    bars = pd.read_csv(SAMPLE / "sp500.csv").tail(20)
    path = tmp_path / "spx.csv"
    bars.to_csv(path, index=False)

    result = CliRunner().invoke(
        app, ["predict", "--bundle", str(tmp / "models/mlalgo-signal/1"), "--bars", str(path)]
    )

    assert result.exit_code == 2
    assert "SPX has 20 bars; the feature spec needs more than 60 for warm-up" in result.output


def test_predict_refuses_a_tampered_bundle(ran, tmp_path: Path) -> None:
    _, tmp = ran
    copy = tmp_path / "bundle"
    shutil.copytree(tmp / "models/mlalgo-signal/1", copy)
    (copy / "model.txt").write_text((copy / "model.txt").read_text() + "\n")

    result = CliRunner().invoke(
        app, ["predict", "--bundle", str(copy), "--bars", str(SAMPLE / "sp500.csv")]
    )

    assert result.exit_code == 2
    assert "model.txt: sha256 does not match the manifest" in result.output


def test_bad_config_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(TRAIN_YAML), "--set", "stages.train.num_leavs=3"])

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --set stages.train.num_leavs=3: stages.train.num_leavs: unknown key "
        "(did you mean num_leaves?)"
    )


def test_summary_table_formats_percentages_and_missing_values() -> None:
    table = summary_table({"total_return": 0.1234, "buy_hold_total_return": 2.0, "sharpe": 0.5})

    assert "12.3 %" in table and "200.0 %" in table and "0.50" in table
    assert table.splitlines()[0].split() == ["strategy", "buy", "&", "hold"]


def test_console_script_is_installed() -> None:
    exe = shutil.which("mlalgo", path=str(Path(__file__).resolve().parents[1] / ".venv/bin"))
    exe = exe or shutil.which("mlalgo")
    assert exe is not None, "pip install -e . installs the mlalgo command"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert all(cmd in out.stdout for cmd in ("run", "predict", "ui"))
