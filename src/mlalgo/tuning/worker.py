"""A tuning worker: load the study, run its share of trials, exit.

The same code runs in the ``mlalgo tune`` process (one worker) and in each process that
``--workers K`` starts or another machine runs; all of them meet only in the storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import optuna
import pandas as pd

from mlalgo.config import ConfigError, PipelineConfig, with_values
from mlalgo.labels import make_labels
from mlalgo.model.splits import PurgedWalkForward
from mlalgo.pipeline import data_hash, load_bars
from mlalgo.tracking import Tracker, git_info
from mlalgo.tuning import holdout
from mlalgo.tuning.objective import DIRECTION, TrialObjective
from mlalgo.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Prepared:
    """The bars and the split every process of a study derives identically from the config."""

    cfg: PipelineConfig  # as given
    bars: pd.DataFrame  # all bars, hold-out included (only the driver evaluates on these)
    holdout: holdout.Holdout
    tuning_cfg: PipelineConfig  # the config with fetch.end at the last pre-hold-out bar
    tuning_bars: pd.DataFrame
    tuning_hash: str  # data hash of the pre-hold-out bars

    def with_threads(self, n: int) -> Prepared:
        """Trials on ``n`` threads: K workers on one machine share its cores instead of each
        taking all of them (LightGBM slows tenfold when oversubscribed). Thread counts do not
        change the models (deterministic training; a test checks it), so trials stay comparable.
        """
        cfg = with_values(self.tuning_cfg, {"stages.train.n_jobs": n}, f"--threads {n}")
        return replace(self, tuning_cfg=cfg)

    @property
    def n_folds(self) -> int:
        bt = self.tuning_cfg.stages.backtest
        splitter = PurgedWalkForward(
            min_train=bt.min_train_bars,
            step=bt.retrain_every,
            window=bt.window,
            max_train=bt.max_train_bars,
        )
        times = self.tuning_bars.index.get_level_values("time").tz_convert(None).to_numpy()
        t1 = make_labels(self.tuning_bars, **self.tuning_cfg.stages.label.model_dump())["t1"]
        return sum(1 for _ in splitter.folds(times, t1.to_numpy(dtype="datetime64[ns]")))


def prepare(cfg: PipelineConfig, source: str) -> Prepared:
    if not cfg.tune.space:
        raise ConfigError(
            f"{source}: tune.space is empty; declare what to search, e.g. "
            "stages.train.num_leaves: {type: int, low: 4, high: 63, log: true}"
        )
    bars, _ = load_bars(cfg)
    split = holdout.split(cfg, bars, source)
    tuning_bars = split.tuning_bars(bars)
    return Prepared(cfg, bars, split, split.tuning_config(cfg), tuning_bars, data_hash(tuning_bars))


def sampler(cfg: PipelineConfig, seed: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE; ``constant_liar`` keeps parallel workers off each other's points."""
    return optuna.samplers.TPESampler(
        n_startup_trials=cfg.tune.startup_trials, seed=seed, multivariate=True, constant_liar=True
    )


def pruner(cfg: PipelineConfig, n_folds: int) -> optuna.pruners.BasePruner:
    tune = cfg.tune
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=tune.warmup_folds)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, min(tune.warmup_folds, n_folds)),
            max_resource=max(n_folds, 1),
            reduction_factor=3,
        )
    return optuna.pruners.NopPruner()


def load_study(
    prep: Prepared, storage: str | optuna.storages.BaseStorage | None, name: str, seed: int
) -> optuna.Study:
    """Create or load the study with this process's sampler and pruner (Optuna keeps neither)."""
    cfg = prep.cfg
    if not isinstance(storage, optuna.storages.BaseStorage):
        storage = open_storage(storage, cfg.tune.heartbeat_seconds)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction=DIRECTION[cfg.tune.objective],
        sampler=sampler(cfg, seed),
        pruner=pruner(cfg, prep.n_folds),
        load_if_exists=True,
    )


def run_worker(
    prep: Prepared,
    study: optuna.Study,
    *,
    n_trials: int,
    timeout: float | None,
    tracker: Tracker,
    parent_run_id: str,
    root: str = ".",
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> None:
    """Run ``n_trials`` trials (fewer if ``timeout`` passes first); a trial that raises a
    configuration or data error is recorded as failed and the worker goes on."""
    check_config(study, prep.cfg)
    objective = TrialObjective(
        prep.tuning_cfg,
        prep.tuning_bars,
        prep.tuning_hash,
        tracker,
        parent_run_id,
        study.study_name,
        git_info(root),
    )
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        catch=(ValueError, FloatingPointError),
        callbacks=list(callbacks),
    )


def check_config(study: optuna.Study, cfg: PipelineConfig) -> None:
    """A study belongs to one config; a worker with another would mix incomparable trials."""
    known = study.user_attrs.get("config_hash")
    if known is not None and known != cfg.hash:
        raise ConfigError(
            f"study {study.study_name!r} was created from config {known[:12]}, this config is "
            f"{cfg.hash[:12]}; run with the same pipeline and --set values, or name a new "
            "study with --study"
        )


def worker_seed(cfg: PipelineConfig, worker: int, n_existing: int) -> int:
    """Distinct per worker and per resume, so no two draw the same random start points."""
    return int(np.random.SeedSequence([cfg.seed, worker, n_existing]).generate_state(1)[0])
