"""Fixtures shared by the splitter tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.config import load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"


@pytest.fixture(scope="module")
def real_xy(sample_bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Real features of AAPL and MSFT 2003-2008 with triple-barrier labels (horizon 10); rows
    without features or a label dropped from X and y, ``t1`` left whole."""
    times = sample_bars.index.get_level_values("time")
    bars = sample_bars.loc[
        (times >= pd.Timestamp("2003-01-01", tz="UTC"))
        & (times <= pd.Timestamp("2008-12-31", tz="UTC"))
    ].loc[["AAPL", "MSFT"]]
    X = compute(load_pipeline(TRAIN_YAML).feature_spec, bars)
    labels = make_labels(bars, horizon=10, kind="triple_barrier")
    keep = X.notna().all(axis=1) & labels["y"].notna()
    return X.loc[keep], labels.loc[keep, "y"].to_numpy(), labels["t1"]
