"""The ``mlalgo tune`` driver: one study, its workers, its MLflow parent run, its verdict.

The driver opens (or resumes) the study and its parent run, fails the trials of workers that
died, runs the remaining trials (in process, or in K worker processes that meet in the
storage), then judges the best trial: deflated Sharpe ratio over every trial run, and one
evaluation on the hold-out, recorded in the study so a resumed study never spends it again
for the same trial.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from mlalgo.backtest.sharpe_stats import SharpeMoments, expected_max_sharpe
from mlalgo.config import ConfigError, PipelineConfig, with_values
from mlalgo.pipeline import (
    data_hash,
    holdout_metrics,
    periods_per_year,
    research,
    run_metrics,
    run_tags,
)
from mlalgo.tracking import RunLog, Tracker, git_info
from mlalgo.tuning import plots
from mlalgo.tuning.storage import is_shared, normalise, open_storage, recover, redact
from mlalgo.tuning.worker import Prepared, check_config, load_study, run_worker, worker_seed

log = logging.getLogger(__name__)

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Request:
    pipeline: Path
    overrides: tuple[str, ...]
    trials: int  # the study's total of complete + pruned trials
    timeout: float | None = None
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    mlflow_config: Path = Path("mlflow.yaml")
    progress: bool = True


@dataclass
class Verdict:
    study: str
    storage: str
    objective: str
    direction: str
    counts: dict[str, int]
    best_number: int | None = None
    best_value: float = math.nan
    best_params: dict[str, Any] = field(default_factory=dict)
    best_sharpe: float = math.nan
    psr: float = math.nan
    dsr: float = math.nan
    dsr_trials: int = 0
    expected_max_sharpe: float = math.nan  # annualised, what luck alone reaches
    holdout: dict[str, float] = field(default_factory=dict)
    holdout_looks: int = 0
    holdout_reused: bool = False
    holdout_range: tuple[str, str] = ("", "")
    parent_run_id: str = ""
    experiment_id: str = ""
    worker_failures: list[str] = field(default_factory=list)


def study_name(cfg: PipelineConfig, given: str | None) -> str:
    """Default: pipeline name and config hash, so the same command resumes the same study."""
    return given or f"{cfg.name}-{cfg.hash[:8]}"


def tune(cfg: PipelineConfig, prep: Prepared, req: Request, tracker: Tracker) -> Verdict:
    if req.workers > 1 and not is_shared(req.storage or ""):
        raise ConfigError(
            f"--workers {req.workers} needs a storage the workers share: "
            "--storage journal:tune.journal on one machine, or a PostgreSQL URL across machines"
        )
    name = study_name(cfg, req.study)
    storage = open_storage(req.storage, cfg.tune.heartbeat_seconds)
    probe = load_study(prep, storage, name, seed=0)
    check_config(probe, cfg)
    _stamp_study(probe, cfg, prep)
    parent = _parent_run(probe, cfg, prep, req, tracker)
    recover(probe, lambda t: _fail_run(tracker, t))
    done = len(probe.get_trials(deepcopy=False, states=DONE))
    running = len(probe.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    remaining = max(req.trials - done - running, 0)
    log.info(
        "study %s (%s): %d done, %d running elsewhere, %d to run",
        name,
        redact(normalise(req.storage)),
        done,
        running,
        remaining,
    )
    failures: list[str] = []
    if remaining:
        n_existing = len(probe.get_trials(deepcopy=False))
        if req.workers == 1:
            study = load_study(prep, storage, name, worker_seed(cfg, 0, n_existing))
            with _Progress(req, done) as bar:
                run_worker(
                    prep,
                    study,
                    n_trials=remaining,
                    timeout=req.timeout,
                    tracker=tracker,
                    parent_run_id=parent.run_id,
                    callbacks=[bar.callback],
                )
        else:
            failures = _spawn(prep, req, name, remaining, parent.run_id, n_existing, probe)
            recover(probe, lambda t: _fail_run(tracker, t))
    verdict = _judge(probe, cfg, prep, req, tracker, parent)
    verdict.worker_failures = failures
    return verdict


def _stamp_study(study: optuna.Study, cfg: PipelineConfig, prep: Prepared) -> None:
    attrs = study.user_attrs
    if "config_hash" not in attrs:
        study.set_user_attr("config_hash", cfg.hash)
        study.set_user_attr("objective", cfg.tune.objective)
        study.set_user_attr("holdout_start", prep.holdout.start.isoformat())
        study.set_user_attr("tuning_data_hash", prep.tuning_hash)
    elif attrs.get("tuning_data_hash") != prep.tuning_hash:
        raise ConfigError(
            f"study {study.study_name!r} was tuned on different bars (data hash "
            f"{str(attrs.get('tuning_data_hash'))[:12]}, now {prep.tuning_hash[:12]}); "
            "its trials are not comparable with new ones: name a new study with --study"
        )


def _parent_run(
    study: optuna.Study, cfg: PipelineConfig, prep: Prepared, req: Request, tracker: Tracker
) -> RunLog:
    """The study's MLflow parent run: reopened on resume, created on the first run."""
    known = study.user_attrs.get("mlflow_parent_run_id")
    if known:
        resumed = tracker.resume(known)
        if resumed is not None:
            return resumed
    tags = {
        **run_tags(cfg, prep.tuning_hash, f"mlalgo tune {req.pipeline}", git_info(".")),
        "mlalgo.study": study.study_name,
        "mlalgo.kind": "study",
        "mlalgo.storage": redact(normalise(req.storage)),
        "mlalgo.objective": cfg.tune.objective,
        "mlalgo.holdout_start": prep.holdout.start.isoformat(),
        "mlalgo.tuning_end": prep.holdout.tuning_end.isoformat(),
    }
    run = tracker.start(f"tune-{study.study_name}", tags)
    run.params(cfg.flat())
    run.text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/pipeline.yaml")
    study.set_user_attr("mlflow_parent_run_id", run.run_id)
    return run


def _fail_run(tracker: Tracker, trial: FrozenTrial) -> None:
    """A trial whose worker died: its MLflow run is failed too, not left RUNNING (nor FINISHED,
    when the worker died after closing the run but before Optuna recorded the value)."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    client = tracker.client()
    try:
        if client.get_run(run_id).info.status != "FAILED":
            client.set_tag(run_id, "mlalgo.trial_state", "FAIL")
            client.set_terminated(run_id, status="FAILED")
    except Exception:  # another tracking store's run: nothing to close here
        log.debug("run %s of trial %d is not in this tracking store", run_id, trial.number)


class _Progress:
    """A bar over the study's done trials, fed by a callback or by polling the storage."""

    def __init__(self, req: Request, done: int) -> None:
        self.bar = tqdm(
            total=req.trials,
            initial=done,
            desc="tuning",
            unit="trial",
            disable=not req.progress,
            dynamic_ncols=True,
        )

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def callback(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.show(study)

    def show(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in DONE for t in trials)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = (max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min)(
            (t.value for t in complete), default=None
        )
        self.bar.n = min(done, self.bar.total)
        self.bar.set_postfix(best="-" if best is None else f"{best:.4f}", pruned=pruned)


def _spawn(
    prep: Prepared,
    req: Request,
    name: str,
    remaining: int,
    parent_run_id: str,
    n_existing: int,
    study: optuna.Study,
) -> list[str]:
    """Start K worker processes with shares adding up to ``remaining``; watch them finish."""
    shares = [remaining // req.workers + (i < remaining % req.workers) for i in range(req.workers)]
    threads = max(1, (os.cpu_count() or 1) // req.workers)
    procs = []
    for i, share in enumerate(shares):
        if share == 0:
            continue
        cmd = [
            sys.executable,
            "-m",
            "mlalgo",
            "tune-worker",
            str(req.pipeline),
            *(arg for o in req.overrides for arg in ("--set", o)),
            "--storage",
            normalise(req.storage),
            "--study",
            name,
            "--trials",
            str(share),
            "--seed",
            str(worker_seed(prep.cfg, i + 1, n_existing)),
            "--parent-run",
            parent_run_id,
            "--mlflow-config",
            str(req.mlflow_config),
            "--threads",
            str(threads),
        ]
        if req.timeout is not None:
            cmd += ["--timeout", str(req.timeout)]
        procs.append((i + 1, subprocess.Popen(cmd)))
    log.info("started %d worker processes: pids %s", len(procs), [p.pid for _, p in procs])
    with _Progress(req, 0) as bar:
        while any(p.poll() is None for _, p in procs):
            bar.show(study)
            time.sleep(1.0)
        bar.show(study)
    return [
        f"worker {i} (pid {p.pid}) exited with {_exit(p.returncode)}"
        for i, p in procs
        if p.returncode != 0
    ]


def _exit(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"


def _judge(
    study: optuna.Study,
    cfg: PipelineConfig,
    prep: Prepared,
    req: Request,
    tracker: Tracker,
    parent: RunLog,
) -> Verdict:
    trials = study.get_trials(deepcopy=False)
    counts = {
        s.name.lower(): sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }
    verdict = Verdict(
        study.study_name,
        redact(normalise(req.storage)),
        cfg.tune.objective,
        study.direction.name.lower(),
        counts,
        parent_run_id=parent.run_id,
        experiment_id=parent.experiment_id,
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    step = counts["complete"] + counts["pruned"]
    if not complete:
        parent.metrics({f"n_trials_{k}": float(v) for k, v in counts.items()}, step=step)
        parent.end("FINISHED")
        return verdict
    best = study.best_trial
    verdict.best_number, verdict.best_value = best.number, float(best.value)
    verdict.best_params = dict(best.params)
    verdict.best_sharpe = float(best.user_attrs.get("sharpe", math.nan))
    _deflate(verdict, best, complete, counts, periods_per_year(cfg))
    _holdout(verdict, study, cfg, prep, best, tracker, parent)
    metrics = {
        "best_value": verdict.best_value,
        "best_sharpe": verdict.best_sharpe,
        "psr": verdict.psr,
        "dsr": verdict.dsr,
        "expected_max_sharpe": verdict.expected_max_sharpe,
        "best_trial": float(best.number),
        **{f"n_trials_{k}": float(v) for k, v in counts.items()},
        **verdict.holdout,
    }
    parent.metrics(metrics, step=step)
    parent.tags(
        {
            "mlalgo.best_trial": str(best.number),
            **{f"mlalgo.best.{k}": str(v) for k, v in best.params.items()},
        }
    )
    parent.dict(
        {"trial": best.number, "value": best.value, "params": best.params},
        "tuning/best_params.json",
    )
    best_cfg = with_values(cfg, best.params, f"trial {best.number}")
    parent.text(yaml.safe_dump(best_cfg.to_dict(), sort_keys=False), "tuning/best_config.yaml")
    parent.frame_csv(study.trials_dataframe(), "tuning/trials.csv")
    for path, fig in plots.figures(study):
        parent.figure(fig, path)
        plots.close(fig)
    parent.end("FINISHED")
    return verdict


def _deflate(
    verdict: Verdict,
    best: FrozenTrial,
    complete: list[FrozenTrial],
    counts: dict[str, int],
    ppy: int,
) -> None:
    """PSR of the best trial, and its DSR against the best of every trial run by luck.

    N counts complete and pruned trials (each was a configuration looked at before this one
    was picked); the variance is that of the complete trials' per-period Sharpe ratios (a
    pruned trial's partial Sharpe covers a shorter, earlier window).
    """
    srs = np.array([t.user_attrs["sr"] for t in complete if "sr" in t.user_attrs])
    n_trials = max(counts["complete"] + counts["pruned"], 1)
    variance = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
    benchmark = expected_max_sharpe(n_trials, variance)
    verdict.dsr_trials = n_trials
    verdict.expected_max_sharpe = benchmark * math.sqrt(ppy)
    if "sr" not in best.user_attrs:
        return
    moments = SharpeMoments(
        best.user_attrs["sr"],
        best.user_attrs["sr_n"],
        best.user_attrs["sr_skew"],
        best.user_attrs["sr_kurt"],
    )
    verdict.psr = moments.psr(0.0)
    verdict.dsr = moments.psr(benchmark)


def _holdout(
    verdict: Verdict,
    study: optuna.Study,
    cfg: PipelineConfig,
    prep: Prepared,
    best: FrozenTrial,
    tracker: Tracker,
    parent: RunLog,
) -> None:
    """Evaluate the best configuration on the hold-out, once per best trial, ever."""
    key = f"holdout.{best.number}"
    looks = sorted(k for k in study.user_attrs if k.startswith("holdout."))
    times = prep.bars.index.get_level_values("time")
    verdict.holdout_range = (f"{prep.holdout.start:%Y-%m-%d}", f"{times.max():%Y-%m-%d}")
    if key in study.user_attrs:
        verdict.holdout = {k: float(v) for k, v in study.user_attrs[key].items()}
        verdict.holdout_looks, verdict.holdout_reused = len(looks), True
        return
    best_cfg = with_values(cfg, best.params, f"trial {best.number}")
    res = research(best_cfg, prep.bars)
    held = holdout_metrics(best_cfg, prep.bars, res, prep.holdout.start)
    tags = {
        **run_tags(
            best_cfg, data_hash(prep.bars), f"mlalgo tune {study.study_name}", git_info(".")
        ),
        "mlalgo.study": study.study_name,
        "mlalgo.trial": str(best.number),
        "mlalgo.holdout_start": prep.holdout.start.isoformat(),
    }
    run = tracker.start(f"holdout-trial-{best.number}", tags, parent=parent.run_id)
    run.params({k: str(v) for k, v in best.params.items()})
    run.text(yaml.safe_dump(best_cfg.to_dict(), sort_keys=False), "config/pipeline.yaml")
    run.metrics({**run_metrics(res, best_cfg.stages.backtest.initial_cash), **held})
    run.end("FINISHED")
    # JSON has no inf or NaN: those are stored as the strings float() reads back.
    study.set_user_attr(key, {k: (v if math.isfinite(v) else repr(v)) for k, v in held.items()})
    verdict.holdout = held
    verdict.holdout_looks = len(looks) + 1
    log.debug("hold-out evaluated for trial %d: %s", best.number, json.dumps(held))
