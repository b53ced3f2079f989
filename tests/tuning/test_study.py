"""A real study on the sample: trials, fold scores, pruning, MLflow runs, DSR and the hold-out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support.studies import TUNE_SHORT, run_study

from mlalgo.backtest.metrics import returns_from_equity, sharpe
from mlalgo.backtest.sharpe_stats import deflated_sharpe_ratio, probabilistic_sharpe_ratio
from mlalgo.config import MlflowConfig, with_values
from mlalgo.pipeline import research
from mlalgo.reproduce import reproduce
from mlalgo.tracking import Tracker
from mlalgo.tuning.study import Request, tune
from mlalgo.tuning.worker import load_study, prepare

TRIALS = 6


@pytest.fixture(scope="module")
def study_run(make_short_config, tmp_path_factory):
    """Six trials in a journal file, tracked in a fresh MLflow store."""
    tmp = tmp_path_factory.mktemp("study")
    cfg = make_short_config(tmp / "models", *TUNE_SHORT)
    tracker = Tracker(MlflowConfig(tracking_uri=f"sqlite:///{tmp}/mlruns.db", experiment="t"))
    prep = prepare(cfg, "test")
    storage = f"journal:{tmp}/tune.journal"
    verdict = run_study(cfg, tracker, TRIALS, storage=storage, study="s", prep=prep)
    study = load_study(prep, storage, "s", seed=0)
    return cfg, prep, tracker, storage, verdict, study


def test_trials_add_up_and_each_value_is_its_last_fold_score(study_run) -> None:
    cfg, prep, _, _, verdict, study = study_run
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == TRIALS == verdict.counts["complete"] + verdict.counts["pruned"]
    assert verdict.counts["fail"] == 0
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        steps = trial.intermediate_values
        assert sorted(steps) == list(range(prep.n_folds))
        assert steps[prep.n_folds - 1] == pytest.approx(trial.value, abs=1e-12)
        assert trial.value == trial.user_attrs["sharpe"]
    assert set(verdict.best_params) == set(cfg.tune.space)


def test_best_trial_reruns_to_the_same_out_of_sample_sharpe(study_run) -> None:
    _, prep, _, _, verdict, study = study_run
    best = study.best_trial
    cfg = with_values(prep.tuning_cfg, best.params, "rerun")
    res = research(cfg, prep.tuning_bars)
    assert res.strategy.metrics["sharpe"] == best.value == verdict.best_value
    # Tuning ends the day before the hold-out: no trial saw a hold-out bar.
    assert res.strategy.equity.index.max() == prep.holdout.tuning_end < prep.holdout.start


def test_dsr_matches_an_independent_recomputation_from_every_trial(study_run) -> None:
    """N counts complete and pruned trials; the variance is over the complete trials' Sharpes."""
    _, prep, _, _, verdict, study = study_run
    initial = prep.cfg.stages.backtest.initial_cash
    returns = {}
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        res = research(with_values(prep.tuning_cfg, trial.params, "x"), prep.tuning_bars)
        returns[trial.number] = returns_from_equity(res.strategy.equity, initial)
    srs = [sharpe(r, ppy=1) for r in returns.values()]
    n = verdict.counts["complete"] + verdict.counts["pruned"]
    best = returns[verdict.best_number]
    expected = deflated_sharpe_ratio(best, n, float(np.var(srs, ddof=1)))
    assert verdict.dsr == pytest.approx(expected, rel=1e-9)
    assert verdict.psr == pytest.approx(probabilistic_sharpe_ratio(best), rel=1e-9)
    assert verdict.dsr_trials == n
    assert 0.0 <= verdict.dsr <= verdict.psr <= 1.0


def test_mlflow_holds_a_parent_run_and_one_nested_run_per_trial(study_run) -> None:
    _, prep, tracker, _, verdict, study = study_run
    client = tracker.client()
    parent = client.get_run(verdict.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlalgo.kind"] == "study"
    assert parent.data.metrics["dsr"] == pytest.approx(verdict.dsr)
    assert parent.data.metrics["psr"] == pytest.approx(verdict.psr)
    assert parent.data.metrics["holdout_sharpe"] == pytest.approx(verdict.holdout["holdout_sharpe"])
    for key, value in verdict.best_params.items():
        assert parent.data.tags[f"mlalgo.best.{key}"] == str(value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/param_importances.png"} <= artifacts
    tuning = {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    assert {"tuning/best_config.yaml", "tuning/best_params.json", "tuning/trials.csv"} <= tuning

    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=100,
    )
    by_trial = {
        r.data.tags["mlalgo.trial"]: r for r in children if r.info.run_name.startswith("trial-")
    }
    assert len(by_trial) == TRIALS
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}
    for trial in study.trials:
        run = by_trial[str(trial.number)]
        assert run.data.tags["mlalgo.trial_state"] == trial.state.name
        assert run.info.status == status[trial.state.name]
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        history = client.get_metric_history(run.info.run_id, "fold/score")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [m.value for m in history] == pytest.approx(
            [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
        )
    holdout = [r for r in children if r.info.run_name.startswith("holdout-trial-")]
    assert len(holdout) == 1
    assert holdout[0].data.tags["mlalgo.holdout_start"] == prep.holdout.start.isoformat()


def test_trial_and_holdout_runs_reproduce_exactly(study_run) -> None:
    _, _, tracker, _, verdict, _ = study_run
    client = tracker.client()
    children = client.search_runs(
        [verdict.experiment_id], f"tags.mlflow.parentRunId = '{verdict.parent_run_id}'"
    )
    best_run = next(r for r in children if r.info.run_name == f"trial-{verdict.best_number}")
    holdout = next(r for r in children if r.info.run_name.startswith("holdout-trial-"))
    for run in (best_run, holdout):
        result = reproduce(run.info.run_id, tracker)
        assert result.ok, result.summary()
        assert "sharpe" in result.reproduced
    assert "holdout_sharpe" in reproduce(holdout.info.run_id, tracker).reproduced


def test_best_config_artifact_is_the_pipeline_with_the_best_params(study_run) -> None:
    cfg, _, tracker, _, verdict, _ = study_run
    path = tracker.client().download_artifacts(
        verdict.parent_run_id, "tuning/best_config.yaml", str(Path(cfg.stages.export.dir).parent)
    )
    best = with_values(cfg, verdict.best_params, "best")
    assert yaml.safe_load(Path(path).read_text()) == best.to_dict()


def test_rerun_resumes_and_never_spends_the_holdout_twice_on_one_trial(study_run) -> None:
    cfg, prep, tracker, storage, first, _ = study_run
    again = run_study(cfg, tracker, TRIALS, storage=storage, study="s", prep=prep)
    assert again.counts == first.counts  # nothing left to run
    assert again.holdout_reused
    assert again.holdout == pytest.approx(first.holdout, nan_ok=True)
    assert again.parent_run_id == first.parent_run_id  # the same parent run, reopened
    more = run_study(cfg, tracker, TRIALS + 2, storage=storage, study="s", prep=prep)
    assert more.counts["complete"] + more.counts["pruned"] == TRIALS + 2
    children = tracker.client().search_runs(
        [first.experiment_id], f"tags.mlflow.parentRunId = '{first.parent_run_id}'"
    )
    holdout_runs = [r for r in children if r.info.run_name.startswith("holdout-trial-")]
    assert len(holdout_runs) == more.holdout_looks == (1 if more.holdout_reused else 2)
    assert more.holdout_reused == (more.best_number == first.best_number)


def test_a_different_config_cannot_join_a_study(study_run, make_short_config, tmp_path) -> None:
    _, _, tracker, storage, _, _ = study_run
    other = make_short_config(tmp_path, *TUNE_SHORT, "stages.train.n_estimators=61")
    with pytest.raises(ValueError, match="study 's' was created from config"):
        run_study(other, tracker, 1, storage=storage, study="s")


def test_holdout_bars_never_reach_tuning(tune_cfg, tracker) -> None:
    """Scrambling every hold-out bar changes the hold-out result and no trial."""
    cfg = tune_cfg()
    prep = prepare(cfg, "test")
    rng = np.random.default_rng(7)
    bars = prep.bars.copy()
    inside = bars.index.get_level_values("time") >= prep.holdout.start
    scale = rng.uniform(0.5, 1.5, size=inside.sum())
    for col in ("open", "high", "low", "close"):
        bars.loc[inside, col] = bars.loc[inside, col].to_numpy() * scale
    scrambled = type(prep)(
        prep.cfg,
        bars,
        prep.holdout,
        prep.tuning_cfg,
        prep.holdout.tuning_bars(bars),
        prep.tuning_hash,
    )
    a = run_study(cfg, tracker, 3, study="a", prep=prep)
    b = run_study(cfg, tracker, 3, study="b", prep=scrambled)
    assert (a.best_number, a.best_value, a.best_params) == (
        b.best_number,
        b.best_value,
        b.best_params,
    )
    assert a.dsr == b.dsr
    assert a.holdout["holdout_sharpe"] != b.holdout["holdout_sharpe"]
    assert a.holdout["holdout_buy_hold_sharpe"] != b.holdout["holdout_buy_hold_sharpe"]


def test_a_trial_that_never_trades_is_pruned_at_the_warmup_fold(tune_cfg, tmp_path) -> None:
    space = "{stages.backtest.policy.long_threshold: {type: float, low: 0.5, high: 0.999}}"
    cfg = tune_cfg(f"tune.space={space}", "tune.pruner=median")
    tracker = Tracker(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path}/m.db", experiment="p"))
    prep = prepare(cfg, "test")
    storage = f"journal:{tmp_path}/p.journal"
    study = load_study(prep, storage, "p", seed=0)
    for _ in range(5):
        study.enqueue_trial({"stages.backtest.policy.long_threshold": 0.5})
    study.enqueue_trial({"stages.backtest.policy.long_threshold": 0.999})
    verdict = run_study(cfg, tracker, 6, storage=storage, study="p", prep=prep)
    study = load_study(prep, storage, "p", seed=0)
    never = study.trials[5]
    assert all(t.state == TrialState.COMPLETE for t in study.trials[:5])
    assert study.trials[0].intermediate_values[cfg.tune.warmup_folds] > 0
    assert never.state == TrialState.PRUNED
    assert max(never.intermediate_values) == cfg.tune.warmup_folds  # stopped at the first chance
    assert set(never.intermediate_values.values()) == {0.0}
    assert verdict.counts == {"complete": 5, "pruned": 1, "fail": 0, "running": 0}
    run = tracker.client().get_run(never.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["mlalgo.trial_state"] == "PRUNED"


def test_log_loss_objective_is_minimised(tune_cfg, tracker) -> None:
    cfg = tune_cfg("tune.objective=log_loss", "tune.pruner=none")
    prep = prepare(cfg, "test")
    verdict = run_study(cfg, tracker, 2, prep=prep)
    assert verdict.direction == "minimize"
    best = research(with_values(prep.tuning_cfg, verdict.best_params, "x"), prep.tuning_bars)
    from mlalgo.backtest.walkforward import oos_scores

    assert verdict.best_value == oos_scores(best.walk_forward.proba, best.labels)["oos_log_loss"]
    assert 0.6 < verdict.best_value < 0.75
    assert math.isfinite(verdict.dsr)


def test_hyperband_uses_the_fold_count_as_its_resource(tune_cfg, tracker) -> None:
    cfg = tune_cfg("tune.pruner=hyperband")
    prep = prepare(cfg, "test")
    study = load_study(prep, None, "h", seed=0)
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    assert study.pruner._max_resource == prep.n_folds == 8
    verdict = run_study(cfg, tracker, 8, prep=prep)
    assert verdict.counts["complete"] + verdict.counts["pruned"] == 8
    assert verdict.counts["complete"] >= 1


def test_timeout_stops_starting_trials(tune_cfg, tracker) -> None:
    cfg = tune_cfg()
    prep = prepare(cfg, "test")
    req = Request(Path("p.yaml"), (), 50, 0.2, None, "t", 1, progress=False)
    verdict = tune(cfg, prep, req, tracker)
    done = verdict.counts["complete"] + verdict.counts["pruned"]
    assert 1 <= done < 5  # each trial takes longer than the timeout; the first one finishes
