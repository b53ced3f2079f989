"""Shared fixtures: the bundled real sample, the default pipeline on a shortened range, and an
isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mlalgo.config import MlflowConfig, PipelineConfig, load_pipeline
from mlalgo.data.sample import load_sample
from mlalgo.tracking import Tracker

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TRAIN_YAML = ROOT / "pipelines" / "train.yaml"

# The default pipeline on a shortened sample: two symbols, six years, fewer trees and folds.
SHORT = (
    "stages.fetch.symbols=[AAPL, MSFT]",
    "stages.fetch.start=2003-01-01",
    "stages.fetch.end=2008-12-31",
    "stages.backtest.min_train_bars=252",
    "stages.backtest.retrain_every=126",
    "stages.train.n_estimators=60",
)


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    """All four sample symbols, adjusted, in the bar schema."""
    return load_sample(root=SAMPLE)


def short_config(models_dir: Path, *extra: str) -> PipelineConfig:
    return load_pipeline(
        TRAIN_YAML,
        [
            *SHORT,
            f"stages.fetch.path={SAMPLE}",
            f"stages.export.dir={models_dir}",
            f"stages.backtest.report_dir={models_dir.parent / 'reports'}",
            *extra,
        ],
    )


@pytest.fixture
def short_cfg(tmp_path: Path) -> PipelineConfig:
    return short_config(tmp_path / "models")


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    """A fresh SQLite MLflow store in the test's own folder."""
    return Tracker(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db", experiment="test"))


@pytest.fixture(scope="session")
def make_short_config():
    """``make_short_config(models_dir, *overrides)`` for module-scoped fixtures."""
    return short_config
