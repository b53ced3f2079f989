"""The run's backtest report: evidence on the right bars, and `mlalgo backtest` as typed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, SHORT, TRAIN_YAML
from typer.testing import CliRunner

from mlalgo.backtest.evidence import permutation_test
from mlalgo.cli import app
from mlalgo.report import _pooled_positions


def frame(symbol_opens: dict[str, list[float]]) -> pd.DataFrame:
    parts = []
    for sym, opens in symbol_opens.items():
        times = pd.bdate_range("2020-01-01", periods=len(opens), tz="UTC")
        index = pd.MultiIndex.from_product([[sym], times], names=["symbol", "time"])
        parts.append(pd.DataFrame({"open": opens}, index=index))
    return pd.concat(parts)


def test_a_decision_earns_the_move_from_the_next_open_to_the_one_after() -> None:
    bars = frame({"A": [100.0, 110.0, 121.0, 133.1], "B": [50.0, 40.0, 20.0, 10.0]})
    target = pd.Series([1.0, np.nan, 0.0, 1.0, -1.0, np.nan, np.nan, 1.0], index=bars.index)
    r, pos = _pooled_positions(bars, target)
    # Bar j's return is open[j+1] / open[j] - 1, zero for a symbol's first and last bar.
    assert r.tolist() == pytest.approx([0.0, 0.1, 0.1, 0.0, 0.0, -0.5, -0.5, 0.0])
    assert pos.tolist() == [1.0, 1.0, 0.0, 1.0, -1.0, -1.0, -1.0, 1.0]  # NaN keeps the position
    # The evidence convention: position[j-1] earns r[j]. A's long from bar 0 earns bar 1's
    # +10 %; B's short decided at its bar 0 earns its bar 1's -50 % move.
    assert pos[0] * r[1] == pytest.approx(0.1) and pos[4] * r[5] == pytest.approx(0.5)


def test_foresight_of_the_earned_move_is_significant_and_noise_is_not(sample_bars) -> None:
    bars = sample_bars.loc[sample_bars.index.get_level_values("symbol").isin(["AAPL", "MSFT"])]
    bars = bars.loc[bars.index.get_level_values("time").year == 2010]
    nxt = bars.groupby(level="symbol")["open"].shift(-2) / bars.groupby(level="symbol")[
        "open"
    ].shift(-1)
    foresight = pd.Series(np.sign(nxt - 1.0).fillna(0.0).to_numpy(), index=bars.index)
    r, pos = _pooled_positions(bars, foresight)
    assert permutation_test(r, pos, n=500).p_value < 0.01
    noise = pd.Series(np.random.default_rng(4).choice([-1.0, 1.0], len(bars)), index=bars.index)
    r, pos = _pooled_positions(bars, noise)
    assert permutation_test(r, pos, n=500).p_value > 0.05


def test_backtest_command_prints_stress_and_evidence_and_writes_the_tearsheet(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: bt\n")
    monkeypatch.chdir(tmp_path)
    args = ["backtest", str(TRAIN_YAML), "--mlflow-config", str(tmp_path / "mlflow.yaml")]
    for item in (*SHORT, f"stages.fetch.path={SAMPLE}"):
        args += ["--set", item]
    result = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": ""})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "costs        x0.5      x1      x2      x4" in out
    assert "timing vs 1000 shuffled positions: p = " in out
    line = next(x for x in out.splitlines() if x.startswith("tearsheet"))
    page = tmp_path / line.split()[-1]
    assert page.name == "tearsheet.html" and "data:image/png;base64," in page.read_text()
    assert not (tmp_path / "models").exists()  # a backtest exports no bundle


def test_backtest_command_reports_risk_exits_and_a_tripped_kill_switch(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: bt\n")
    monkeypatch.chdir(tmp_path)
    args = ["backtest", str(TRAIN_YAML), "--mlflow-config", str(tmp_path / "mlflow.yaml")]
    risk = ("stages.backtest.risk.trailing_stop=0.03", "stages.backtest.risk.max_drawdown=0.05")
    for item in (*SHORT, f"stages.fetch.path={SAMPLE}", *risk):
        args += ["--set", item]
    result = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": ""})
    assert result.exit_code == 0, result.output
    exits = next(x for x in result.output.splitlines() if x.startswith("exits: "))
    counts = dict(item.rsplit(" ", 1) for item in exits.removeprefix("exits: ").split(", "))
    assert int(counts["trailing stop"]) > 0
    assert 1 <= int(counts["kill switch"]) <= 2  # the flatten of each symbol held
    assert "kill switch: drawdown limit hit at the close of " in result.output
