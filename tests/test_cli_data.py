"""`mlalgo validate` and `mlalgo reconcile` as a user runs them: messages and exit codes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from mlalgo.cli import app

ROOT = Path(__file__).resolve().parents[1]
SP500 = ROOT / "data" / "sample" / "sp500.csv"


def test_validate_the_sample_index_reports_no_errors_and_no_nyse_gaps() -> None:
    result = CliRunner().invoke(
        app, ["validate", str(SP500), "--interval", "1d", "--calendar", "NYSE"]
    )

    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output
    assert "gap" not in result.output
    assert result.output.strip().endswith("ok")


def test_validate_a_broken_file_exits_1_and_names_file_time_and_fix(tmp_path: Path) -> None:
    frame = pd.read_csv(SP500).head(300)
    frame.loc[100, "High"] = frame.loc[100, "Low"] - 1
    frame = frame.drop(index=200)
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)

    result = CliRunner().invoke(
        app, ["validate", str(path), "--interval", "1d", "--calendar", "NYSE"]
    )

    assert result.exit_code == 1
    out = result.output
    assert str(path) in out
    assert "high < low" in out and frame.loc[100, "Date"] in out
    assert "gap" in out
    assert "FAILED" in out


def test_validate_an_unreadable_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("Date,Open,High\n2020-01-01,1,2\n")

    result = CliRunner().invoke(app, ["validate", str(path)])

    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}")


def test_reconcile_identical_sources_agree(tmp_path: Path) -> None:
    copy = tmp_path / "copy.parquet"
    pd.read_csv(SP500).to_parquet(copy)

    result = CliRunner().invoke(app, ["reconcile", str(SP500), str(copy)])

    assert result.exit_code == 0, result.output


def test_reconcile_lists_a_changed_and_a_missing_bar(tmp_path: Path) -> None:
    frame = pd.read_csv(SP500)
    changed_day, missing_day = frame.loc[10, "Date"], frame.loc[20, "Date"]
    frame.loc[10, "Open"] = frame.loc[10, "Open"] * 1.001
    other = tmp_path / "other.csv"
    frame.drop(index=20).to_csv(other, index=False)

    result = CliRunner().invoke(app, ["reconcile", str(SP500), str(other)])

    assert result.exit_code == 1
    assert f"{changed_day}T00:00Z open" in result.output
    assert missing_day in result.output


def test_exchange_serve_refuses_a_bad_fault_spec() -> None:
    result = CliRunner().invoke(
        app, ["exchange", "serve", "--data", str(SP500), "--faults", "429=0.1,teapot=0.5"]
    )

    assert result.exit_code == 2
    assert result.output.startswith("error: --faults:") and "teapot" in result.output


def test_exchange_serve_answers_as_binance_and_stops_on_sigterm() -> None:
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlalgo.cli",
            "exchange",
            "serve",
            "--data",
            str(SP500),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api/v3/klines?symbol=SP500&interval=1d&limit=2"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    rows = json.loads(resp.read())
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server never came up"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()

    assert len(rows) == 2 and rows[-1][4] == "2506.850098"  # the sample's last close, 2018-12-31
    assert proc.returncode == 0, out
