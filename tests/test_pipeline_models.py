"""The pipeline with each model kind, sample weights, early stopping and triple-barrier labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mlalgo.config import ConfigError
from mlalgo.pipeline import load_bars, research

VARIANTS = {
    "logistic": ["stages.train.model=logistic", "stages.export.enabled=false"],
    "hist_gbm": ["stages.train.model=hist_gbm", "stages.export.enabled=false"],
    "uniqueness": ["stages.train.sample_weight=uniqueness", "stages.label.horizon=5"],
    "early_stopping": ["stages.train.early_stopping_rounds=10", "stages.train.n_estimators=200"],
    "triple_barrier": [
        "stages.label.kind=triple_barrier",
        "stages.label.horizon=10",
        "stages.label.profit_take=1.5",
        "stages.label.stop_loss=1.0",
    ],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_runs_out_of_sample_with_finite_metrics(
    variant: str, tmp_path: Path, make_short_config
) -> None:
    cfg = make_short_config(tmp_path / "models", *VARIANTS[variant])
    bars, _ = load_bars(cfg)

    res = research(cfg, bars)

    proba = res.walk_forward.proba.dropna()
    assert len(proba) > 500 and ((proba > 0) & (proba < 1)).all()
    for key in ("sharpe", "max_drawdown", "total_return"):
        assert math.isfinite(res.strategy.metrics[key]), key
    assert (res.walk_forward.folds["train_end"] < res.walk_forward.folds["test_start"]).all()


def test_variants_are_deterministic(tmp_path: Path, make_short_config) -> None:
    cfg = make_short_config(tmp_path / "m", *VARIANTS["uniqueness"], *VARIANTS["early_stopping"])
    bars, _ = load_bars(cfg)

    a, b = research(cfg, bars), research(cfg, bars)

    np.testing.assert_array_equal(a.walk_forward.proba.to_numpy(), b.walk_forward.proba.to_numpy())


def test_uniqueness_weights_change_the_model(tmp_path: Path, make_short_config) -> None:
    plain = make_short_config(tmp_path / "a", "stages.label.horizon=5")
    weighted = make_short_config(tmp_path / "b", *VARIANTS["uniqueness"])
    bars, _ = load_bars(plain)

    p0 = research(plain, bars).walk_forward.proba.to_numpy()
    p1 = research(weighted, bars).walk_forward.proba.to_numpy()

    assert not np.allclose(p0, p1, equal_nan=True)


def test_a_baseline_cannot_be_exported_as_a_bundle(tmp_path: Path, make_short_config) -> None:
    with pytest.raises(ConfigError, match="stages: export: the signal-model bundle"):
        make_short_config(tmp_path / "m", "stages.train.model=logistic")


def test_early_stopping_is_refused_for_the_logistic_baseline(
    tmp_path: Path, make_short_config
) -> None:
    with pytest.raises(ConfigError, match="early_stopping_rounds applies to lightgbm"):
        make_short_config(
            tmp_path / "m", *VARIANTS["logistic"], "stages.train.early_stopping_rounds=5"
        )
