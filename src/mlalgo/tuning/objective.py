"""One trial: the pipeline's research step on the pre-hold-out bars, scored fold by fold.

The score after fold k is the objective computed on every out-of-sample bar up to the end of
fold k (the stitched, costed backtest for ``sharpe``; all predictions so far for
``log_loss``), so the last intermediate value is the trial's value and a pruner compares
trials at the same point in time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from sklearn.metrics import log_loss

from mlalgo.backtest.metrics import returns_from_equity, sharpe
from mlalgo.backtest.sharpe_stats import sharpe_moments
from mlalgo.config import PipelineConfig, with_values
from mlalgo.labels import make_labels
from mlalgo.pipeline import backtest_window, periods_per_year, research, run_metrics, run_tags
from mlalgo.tracking import RunLog, Tracker
from mlalgo.tuning.space import suggest
from mlalgo.tuning.storage import stamp

log = logging.getLogger(__name__)

DIRECTION = {"sharpe": "maximize", "log_loss": "minimize"}
VALUE_METRIC = {"sharpe": "sharpe", "log_loss": "oos_log_loss"}


class FoldScorer:
    """``on_fold`` for :func:`research`: report the running objective, prune, keep the series."""

    def __init__(self, cfg: PipelineConfig, bars: pd.DataFrame, trial: optuna.Trial | None) -> None:
        self.cfg, self.bars, self.trial = cfg, bars, trial
        self.objective = cfg.tune.objective
        self.y = make_labels(bars, **cfg.stages.label.model_dump())["y"].to_numpy()
        self.oos_start: pd.Timestamp | None = None
        self.series: dict[str, list[float]] = {
            "fold/score": [],
            "fold/sharpe": [],
            "fold/log_loss": [],
            "fold/auc": [],
        }

    def __call__(self, row: dict[str, Any], proba: np.ndarray) -> None:
        if self.oos_start is None:
            self.oos_start = row["test_start"]
        k = int(row["fold"])
        if self.objective == "sharpe":
            score, fold_sr = self._sharpe(row, proba)
        else:
            score, fold_sr = self._log_loss(proba), float("nan")
        for name, value in (
            ("fold/score", score),
            ("fold/sharpe", fold_sr),
            ("fold/log_loss", row["log_loss"]),
            ("fold/auc", row["auc"]),
        ):
            self.series[name].append(float(value))
        if self.trial is not None:
            self.trial.report(score, step=k)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k}: running score {score:.4f}")

    def _sharpe(self, row: dict[str, Any], proba: np.ndarray) -> tuple[float, float]:
        assert self.oos_start is not None
        result = backtest_window(
            self.cfg, self.bars, proba, self.oos_start, row["test_end"], buy_hold=False
        )[1]
        initial = self.cfg.stages.backtest.initial_cash
        ppy = periods_per_year(self.cfg)
        returns = pd.Series(returns_from_equity(result.equity, initial), index=result.equity.index)
        in_fold = returns.index >= row["test_start"]
        return result.metrics["sharpe"], sharpe(returns.to_numpy()[in_fold], ppy)

    def _log_loss(self, proba: np.ndarray) -> float:
        seen = ~np.isnan(proba) & ~np.isnan(self.y)
        return float(log_loss(self.y[seen], proba[seen], labels=[0, 1]))


@dataclass
class TrialObjective:
    """The callable Optuna optimises; every trial is also a nested MLflow run."""

    cfg: PipelineConfig  # the tuning config: the pipeline ending before the hold-out
    bars: pd.DataFrame  # the pre-hold-out bars
    dhash: str
    tracker: Tracker
    parent_run_id: str
    study_name: str
    git: dict[str, str]

    def __call__(self, trial: optuna.Trial) -> float:
        stamp(trial)
        values = suggest(trial, self.cfg.tune.space)
        cfg = with_values(self.cfg, values, f"trial {trial.number}")
        tags = {
            **run_tags(cfg, self.dhash, f"mlalgo tune (study {self.study_name})", self.git),
            "mlalgo.study": self.study_name,
            "mlalgo.trial": str(trial.number),
            "mlalgo.trial_state": "RUNNING",
        }
        run = self.tracker.start(f"trial-{trial.number}", tags, parent=self.parent_run_id)
        trial.set_user_attr("mlflow_run_id", run.run_id)
        run.params({k: str(v) for k, v in values.items()})
        run.text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/pipeline.yaml")
        scorer = FoldScorer(cfg, self.bars, trial)
        try:
            res = research(cfg, self.bars, on_fold=scorer)
        except optuna.TrialPruned:
            _close(run, scorer, "PRUNED", "KILLED")
            raise
        except BaseException:
            _close(run, scorer, "FAIL", "FAILED")
            raise
        initial = cfg.stages.backtest.initial_cash
        metrics = run_metrics(res, initial)
        moments = sharpe_moments(returns_from_equity(res.strategy.equity, initial))
        if moments is not None:  # per-period Sharpe and shape: what the study's DSR needs
            trial.set_user_attr("sr", moments.sharpe)
            trial.set_user_attr("sr_n", moments.n)
            trial.set_user_attr("sr_skew", moments.skew)
            trial.set_user_attr("sr_kurt", moments.kurt)
        trial.set_user_attr("sharpe", metrics["sharpe"])
        run.metrics(metrics)
        _close(run, scorer, "COMPLETE", "FINISHED")
        value = float(metrics[VALUE_METRIC[self.cfg.tune.objective]])
        log.debug("trial %d: %s = %.4f", trial.number, self.cfg.tune.objective, value)
        return value


def _close(run: RunLog, scorer: FoldScorer, state: str, status: str) -> None:
    for name, values in scorer.series.items():
        run.series(name, values)
    run.tags({"mlalgo.trial_state": state})
    run.end(status)
