"""A short tunable pipeline and an in-process study runner for the tuning tests."""

from __future__ import annotations

from pathlib import Path

from mlalgo.config import PipelineConfig
from mlalgo.tracking import Tracker
from mlalgo.tuning.study import Request, Verdict, tune
from mlalgo.tuning.worker import Prepared, prepare

# Two symbols, 2003-2008, the last year held out: 8 folds of ~0.6 s per trial.
TUNE_SHORT = (
    "stages.export.enabled=false",
    "tune.holdout_bars=252",
    "tune.warmup_folds=2",
    "tune.startup_trials=3",
)


def run_study(
    cfg: PipelineConfig,
    tracker: Tracker,
    trials: int,
    *,
    storage: str | None = None,
    study: str | None = None,
    prep: Prepared | None = None,
) -> Verdict:
    req = Request(Path("pipelines/train.yaml"), (), trials, None, storage, study, 1, progress=False)
    return tune(cfg, prep or prepare(cfg, "test"), req, tracker)
