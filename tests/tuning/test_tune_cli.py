"""`mlalgo tune` as a user types it: the verdict it prints, and its refusals."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from conftest import SAMPLE, SHORT, TRAIN_YAML
from support.studies import TUNE_SHORT
from typer.testing import CliRunner

from mlalgo.cli import app
from mlalgo.config import load_pipeline, with_values


def invoke(tmp_path: Path, *extra: str, sets: tuple[str, ...] = ()):
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: cli\n")
    args = ["tune", str(TRAIN_YAML), "--mlflow-config", str(tmp_path / "mlflow.yaml"), *extra]
    for item in (*SHORT, *TUNE_SHORT, f"stages.fetch.path={SAMPLE}", *sets):
        args += ["--set", item]
    return CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": ""})


def test_tune_prints_the_verdict_and_a_command_that_runs_the_best_config(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--trials", "3")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 complete, 0 pruned, 0 failed" in out
    assert "out-of-sample sharpe" in out and "after costs" in out
    assert "deflated Sharpe ratio" in out and "best of 3 trials" in out
    assert "hold-out 2008-01-03 .. 2008-12-31 (never seen by tuning)" in out
    assert "MLflow parent run" in out
    line = next(x for x in out.splitlines() if x.startswith("run it:"))
    argv = shlex.split(line.removeprefix("run it:"))
    assert argv[:3] == ["mlalgo", "run", str(TRAIN_YAML)]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    cfg = load_pipeline(TRAIN_YAML, sets)
    tuned = {s.split("=", 1)[0] for s in sets} & set(cfg.tune.space)
    assert tuned == set(cfg.tune.space)  # every searched value, at full precision
    base = load_pipeline(TRAIN_YAML, [s for s in sets if s.split("=", 1)[0] not in tuned])
    values = {k: v for k, v in (s.split("=", 1) for s in sets) if k in tuned}
    assert with_values(base, {k: float(v) for k, v in values.items()}, "x") == cfg


@pytest.mark.parametrize(
    ("extra", "sets", "message"),
    [
        (("--workers", "2"), (), "--workers 2 needs a storage the workers share"),
        ((), ("tune.space={}",), "tune.space is empty"),
        (("--storage", "sqlite"), (), "expected memory, journal:PATH or a database URL"),
        (
            (),
            ("tune.holdout_bars=1400",),
            "leaves 111 bar times for tuning; walk-forward needs at least",
        ),
    ],
)
def test_refusals_are_one_clear_line(tmp_path: Path, extra, sets, message: str) -> None:
    result = invoke(tmp_path, "--trials", "2", *extra, sets=sets)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
