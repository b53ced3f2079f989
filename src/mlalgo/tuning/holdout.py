"""The final hold-out: the last stretch of bars that tuning never sees.

Tuning runs on a config whose ``stages.fetch.end`` is the last bar before the hold-out, so a
trial is an ordinary pipeline run on shorter data (and reproducible as one), and no label,
feature or early-stopping slice of any trial can reach a hold-out price.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlalgo.config import ConfigError, PipelineConfig, with_values
from mlalgo.data.base import utc


@dataclass(frozen=True)
class Holdout:
    start: pd.Timestamp  # first hold-out bar time
    tuning_end: pd.Timestamp  # last bar time tuning may use
    n_bars: int  # distinct bar times in the hold-out

    def tuning_config(self, cfg: PipelineConfig) -> PipelineConfig:
        return with_values(
            cfg, {"stages.fetch.end": self.tuning_end.isoformat()}, "tuning (pre-hold-out) range"
        )

    def tuning_bars(self, bars: pd.DataFrame) -> pd.DataFrame:
        return bars.loc[bars.index.get_level_values("time") <= self.tuning_end]


def split(cfg: PipelineConfig, bars: pd.DataFrame, source: str) -> Holdout:
    """Where the hold-out starts: ``tune.holdout_start``, or the last ``holdout_bars`` times."""
    tune = cfg.tune
    times = bars.index.get_level_values("time").unique().sort_values()
    if tune.holdout_start is not None:
        first = times.searchsorted(utc(tune.holdout_start))
        key = f"tune.holdout_start {tune.holdout_start}"
    else:
        first = len(times) - (tune.holdout_bars or 0)
        key = f"tune.holdout_bars {tune.holdout_bars}"
    if first >= len(times):
        raise ConfigError(f"{source}: {key}: leaves no bars for the hold-out")
    need = cfg.stages.backtest.min_train_bars + cfg.stages.backtest.retrain_every
    if first < need:
        raise ConfigError(
            f"{source}: {key}: leaves {max(first, 0)} bar times for tuning; walk-forward needs "
            f"at least min_train_bars + retrain_every = {need}"
        )
    return Holdout(start=times[first], tuning_end=times[first - 1], n_bars=len(times) - first)
