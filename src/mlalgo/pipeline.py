"""Runs the train pipeline: fetch, validate, features, label, walk-forward, backtest, export.

:func:`research` is the pure part (bars in, out-of-sample results out, no I/O), which the
look-ahead tests drive directly; :func:`run_pipeline` wraps it with data loading, MLflow tracking
and the bundle export. Each stage is a call into its own module, so any of them can be replaced
without touching the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlalgo import __version__
from mlalgo.backtest.report import equity_figure, fold_table
from mlalgo.backtest.runner import BacktestResult, run
from mlalgo.backtest.walkforward import (
    WalkForwardResult,
    oos_scores,
    training_weights,
    walk_forward,
)
from mlalgo.bars import ValidationReport, validate
from mlalgo.bundle import export_bundle
from mlalgo.config import ExecutionConfig, PipelineConfig, TrainConfig
from mlalgo.data import intervals
from mlalgo.data.sources import fetch
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels, reach
from mlalgo.model.estimators import make_estimator as build
from mlalgo.model.splits import PurgedWalkForward
from mlalgo.policy import DecisionPolicy
from mlalgo.promotion import Decision, promote
from mlalgo.registry import register_bundle
from mlalgo.report import evidence_metrics, write_report
from mlalgo.scoring import decide_bars
from mlalgo.tracking import Tracker, git_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Research:
    """Everything the pure part of a run produces, all out-of-sample where it matters."""

    features: pd.DataFrame
    labels: pd.DataFrame
    walk_forward: WalkForwardResult
    target: pd.Series  # decided exposure per OOS bar
    strategy: BacktestResult
    buy_hold: BacktestResult

    @property
    def oos_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.strategy.equity.index[0], self.strategy.equity.index[-1]


@dataclass(frozen=True)
class RunResult:
    research: Research
    metrics: dict[str, float]
    folds: pd.DataFrame
    report: Path  # the tearsheet, beside the run under reports/
    stress: dict[str, pd.DataFrame]
    run_id: str
    experiment_id: str
    tracking_uri: str
    bundle_dir: Path | None
    config_hash: str
    data_hash: str
    model_version: str | None = None  # NAME/VERSION in the registry, with stages.register
    decision: Decision | None = None  # the promotion gate's, with stages.promote


def make_estimator(cfg: TrainConfig, seed: int, purge_bars: int = 0) -> Any:
    """A fresh estimator for ``cfg.model``; early stopping purges ``purge_bars`` (label reach)."""
    if cfg.model == "logistic":
        return build("logistic", cfg.logistic.model_dump(), seed)
    if cfg.model == "hist_gbm":
        stop = cfg.early_stopping_rounds
        extra = {"early_stopping": True, "n_iter_no_change": stop} if stop else {}
        params = {
            **cfg.hist_gbm.model_dump(),
            **extra,
            "n_jobs": cfg.n_jobs,
            "validation_fraction": cfg.validation_fraction,
            "purge_bars": purge_bars,
        }
        return build("hist_gbm", params, seed)
    params = cfg.model_dump(exclude={"model", "sample_weight", "logistic", "hist_gbm"})
    return build("lightgbm", {**params, "purge_bars": purge_bars}, seed)


def load_bars(cfg: PipelineConfig) -> tuple[pd.DataFrame, ValidationReport]:
    """Fetch and validate: the edge where bad bars stop."""
    fetched, checks = cfg.stages.fetch, cfg.stages.validate_
    where = fetched.base_url or fetched.path
    return validate(
        fetch(fetched),
        source=f"{fetched.source} source ({where})",
        on_error=checks.on_error,
        interval=fetched.interval,
        calendar=checks.calendar,
        jump_sigma=checks.jump_sigma,
        strict=checks.strict,
    )


def periods_per_year(cfg: PipelineConfig) -> int:
    return intervals.periods_per_year(cfg.stages.fetch.interval, cfg.stages.validate_.calendar)


def research(
    cfg: PipelineConfig,
    bars: pd.DataFrame,
    on_fold: Callable[[dict[str, Any], np.ndarray], None] | None = None,
) -> Research:
    """Features, labels, walk-forward predictions, and backtests of the strategy and buy & hold.

    ``on_fold`` sees each fold as it completes (see :func:`walk_forward`); tuning uses it to
    report intermediate scores and prune.
    """
    st = cfg.stages
    features = compute(cfg.feature_spec, bars)
    labels = make_labels(bars, **st.label.model_dump())
    splitter = PurgedWalkForward(
        min_train=st.backtest.min_train_bars,
        step=st.backtest.retrain_every,
        window=st.backtest.window,
        max_train=st.backtest.max_train_bars,
    )
    purge = reach(st.label.horizon, st.label.entry)
    wf = walk_forward(
        features,
        labels,
        splitter,
        lambda: make_estimator(st.train, cfg.seed, purge),
        sample_weight=st.train.sample_weight,
        on_fold=on_fold,
    )
    oos_start = wf.folds["test_start"].iloc[0]
    target, strategy = backtest_window(cfg, bars, wf.proba.to_numpy(), oos_start)
    assert strategy.buy_hold is not None
    return Research(features, labels, wf, target, strategy, strategy.buy_hold)


def backtest_window(
    cfg: PipelineConfig,
    bars: pd.DataFrame,
    proba: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp | None = None,
    *,
    buy_hold: bool = True,
    policy: DecisionPolicy | None = None,
    execution: ExecutionConfig | None = None,
) -> tuple[pd.Series, BacktestResult]:
    """Trade ``proba`` (aligned with ``bars``) from flat on bars in [start, end], with buy &
    hold beside it.

    The one place that turns predictions into a costed backtest, so a run, a tuning trial's
    fold scores, the hold-out evaluation and the promotion gate cannot disagree about fills or
    costs. Each of the ``m`` symbols is allotted ``1/m`` of the account: its target is
    ``decide``'s exposure over ``m``, all on one cash account. Volatility targeting reads each
    symbol's realised volatility at the decision's close, from all bars up to it. ``policy``
    and ``execution`` replace the config's (a bundle judged under its own).
    """
    bt = cfg.stages.backtest
    if execution is not None:
        bt = bt.with_execution(execution)
    ppy = periods_per_year(cfg)
    times = bars.index.get_level_values("time")
    inside = (times >= start) & (times <= end if end is not None else True)
    window = bars.loc[inside]
    n_symbols = window.index.get_level_values("symbol").nunique()
    exposure = decide_bars(bars, proba, policy or bt.policy, ppy)[inside] / n_symbols
    target = pd.Series(exposure, index=window.index)
    result = run(window, target, bt, periods_per_year=ppy, buy_hold=buy_hold)
    return target, result


def holdout_metrics(
    cfg: PipelineConfig, bars: pd.DataFrame, res: Research, start: pd.Timestamp
) -> dict[str, float]:
    """The strategy and buy & hold traded from flat on the hold-out alone: ``holdout_*``."""
    result = backtest_window(cfg, bars, res.walk_forward.proba.to_numpy(), start)[1]
    assert result.buy_hold is not None
    return {
        **{f"holdout_{k}": v for k, v in result.metrics.items()},
        **{f"holdout_buy_hold_{k}": v for k, v in result.buy_hold.metrics.items()},
    }


def run_metrics(res: Research, initial: float) -> dict[str, float]:
    """Everything a run reports: strategy, buy & hold, out-of-sample classification, folds.

    ``psr`` is the probabilistic Sharpe ratio of the daily returns: the probability that the
    true Sharpe ratio is above zero, given the sample's length, skew and fat tails. ``dsr``
    deflates it for the number of configurations tried; a plain run tried one, so the two are
    equal here and ``mlalgo tune`` reports the deflated one for its study.
    """
    return {
        **res.strategy.metrics,
        **{f"buy_hold_{k}": v for k, v in res.buy_hold.metrics.items()},
        **oos_scores(res.walk_forward.proba, res.labels),
        "n_folds": float(len(res.walk_forward.folds)),
    }


def package_versions() -> dict[str, str]:
    """Versions of what a run's numbers depend on, so a rerun can say why it differs."""
    out = {"python": platform.python_version()}
    for name in (
        "mlalgo",
        "numpy",
        "pandas",
        "scikit-learn",
        "lightgbm",
        "numba",
        "mlflow",
        "pyarrow",
        "pydantic",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_hash(bars: pd.DataFrame) -> str:
    """Content hash of the bars (index and values), independent of file format or location."""
    digest = pd.util.hash_pandas_object(bars, index=True).to_numpy()
    return hashlib.sha256(digest.tobytes()).hexdigest()


def run_tags(cfg: PipelineConfig, dhash: str, source: str, git: dict[str, str]) -> dict[str, str]:
    """What makes a run reproducible: config, data and feature-spec hashes, code and versions."""
    return {
        "mlalgo.pipeline": cfg.name,
        "mlalgo.config_hash": cfg.hash,
        "mlalgo.data_hash": dhash,
        "mlalgo.feature_spec_hash": cfg.feature_spec.hash,
        "mlalgo.version": __version__,
        "mlalgo.seed": str(cfg.seed),
        "mlalgo.argv": " ".join(sys.argv),
        "mlalgo.versions": json.dumps(package_versions(), sort_keys=True),
        "mlflow.source.name": source,
        **git,
    }


def run_pipeline(
    cfg: PipelineConfig, *, tracker: Tracker, root: str | Path = ".", source: str = "pipeline"
) -> RunResult:
    """Run every stage inside one MLflow run and export the bundle; return what a person reads."""
    root = Path(root)
    bars, report = load_bars(cfg)
    dhash = data_hash(bars)
    tags = run_tags(cfg, dhash, source, git_info(root))
    with tracker.run(f"{cfg.name}-{cfg.hash[:8]}", tags) as run:
        run.params(cfg.flat())
        run.text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config/pipeline.yaml")
        run.dict(report.to_dict(), "data/validation.json")
        log.info("bars: %d rows, %d symbols", len(bars), bars.index.get_level_values(0).nunique())
        res = research(cfg, bars)
        metrics = {
            **run_metrics(res, cfg.stages.backtest.initial_cash),
            **evidence_metrics(cfg, bars, res),
        }
        run.metrics(metrics)
        ppy = periods_per_year(cfg)
        folds = fold_table(
            res.walk_forward.folds,
            res.strategy.equity,
            res.buy_hold.equity,
            initial=cfg.stages.backtest.initial_cash,
            periods_per_year=ppy,
        )
        run.frame_csv(folds, "reports/folds.csv")
        run.frame_csv(res.strategy.trades, "reports/trades.csv")
        start, end = res.oos_range
        title = f"{cfg.name}: out-of-sample {start:%Y-%m-%d} .. {end:%Y-%m-%d}"
        run.figure(
            equity_figure(res.strategy.equity, res.buy_hold.equity, title), "plots/equity.png"
        )
        reports = cfg.stages.backtest.report_dir
        base = reports if reports.is_absolute() else root / reports
        report_dir = base / f"{cfg.name}-{run.run_id[:8]}"
        report, tables = write_report(cfg, bars, res, metrics, report_dir, title)
        run.folder(report_dir, "tearsheet")
        for name, table in tables.items():
            run.frame_csv(table, f"reports/{name}.csv")
        bundle_dir, model_version, decision = None, None, None
        if cfg.stages.export.enabled:
            bundle_dir = _export(cfg, res, bars, metrics, run.run_id, dhash, root, tracker)
            run.folder(bundle_dir, "bundle")
            run.tags({"mlalgo.bundle": str(bundle_dir)})
        if cfg.stages.register_.enabled:
            assert bundle_dir is not None
            name = model_name(cfg, tracker)
            version = register_bundle(
                tracker, run.run_id, bundle_dir, name, cfg.stages.register_.alias
            ).version
            model_version = f"{name}/{version}"
            run.tags({"mlalgo.model_version": model_version})
            if cfg.stages.promote.enabled:
                decision = promote(cfg, bars, tracker, name, str(version), root=root)
                run.tags({"mlalgo.promotion": decision.verdict})
    return RunResult(
        res,
        metrics,
        folds,
        report,
        tables,
        run.run_id,
        run.experiment_id,
        tracker.tracking_uri,
        bundle_dir,
        cfg.hash,
        dhash,
        model_version,
        decision,
    )


def model_name(cfg: PipelineConfig, tracker: Tracker) -> str:
    """The bundle folder's and the registered model's name."""
    return cfg.stages.export.model_name or tracker.cfg.registered_model


def _export(
    cfg: PipelineConfig,
    res: Research,
    bars: pd.DataFrame,
    metrics: dict[str, float],
    run_id: str,
    dhash: str,
    root: Path,
    tracker: Tracker,
) -> Path:
    """Fit the final model on every labelled bar before the hold-out and write it as a bundle.

    With ``export.holdout_bars`` the last bar times are kept out, and so is every sample whose
    label reads into them, so the promotion gate judges the bundle on bars it never saw; the
    judged artifact is the one that trades (no refit after the gate).
    """
    X, y = res.features, res.labels["y"]
    mask = X.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    holdout_start = holdout_cut(bars, cfg.stages.export.holdout_bars)
    if holdout_start is not None:
        mask &= (res.labels["t1"] < holdout_start).to_numpy()
    if not mask.any():
        raise ValueError(
            f"export: no labelled bar before the hold-out start {holdout_start}; "
            "lower stages.export.holdout_bars"
        )
    times = X.index.get_level_values("time")[mask]
    label = cfg.stages.label
    weights = training_weights(cfg.stages.train.sample_weight, X.loc[mask], res.labels.loc[mask])
    model = make_estimator(cfg.stages.train, cfg.seed, reach(label.horizon, label.entry))
    model.fit(X.loc[mask], y.loc[mask], sample_weight=weights, times=times)
    start, end = res.oos_range
    export = cfg.stages.export
    name = model_name(cfg, tracker)
    info = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mlalgo_version": __version__,
        "mlflow_run_id": run_id,
        "config_hash": cfg.hash,
        "data_hash": dhash,
        "symbols": sorted(set(bars.index.get_level_values("symbol"))),
        "interval": cfg.stages.fetch.interval,
        "periods_per_year": periods_per_year(cfg),
        "label": cfg.stages.label.model_dump(mode="json"),
        "training_range": {
            "start": times.min().isoformat(),
            "end": times.max().isoformat(),
            "label_end": res.labels["t1"][mask].max().isoformat(),
        },
        "holdout_start": None if holdout_start is None else holdout_start.isoformat(),
        "oos_range": {"start": start.isoformat(), "end": end.isoformat()},
        "metrics": {k: (v if np.isfinite(v) else None) for k, v in sorted(metrics.items())},
    }
    out_dir = export.dir if export.dir.is_absolute() else root / export.dir
    return export_bundle(
        out_dir,
        name,
        model_text=model.booster_.model_to_string(),
        spec=cfg.feature_spec,
        policy=cfg.stages.backtest.policy,
        execution=cfg.stages.backtest.execution(),
        input_example=bar_records(bars, cfg.feature_spec.warmup + 2),
        info=info,
    )


def holdout_cut(bars: pd.DataFrame, n: int) -> pd.Timestamp | None:
    """The first of the last ``n`` bar times (None for 0)."""
    if n == 0:
        return None
    times = bars.index.get_level_values("time").unique().sort_values()
    if n >= len(times):
        raise ValueError(f"export: holdout_bars {n} leaves no bar to train on ({len(times)} bars)")
    return times[-n]


def bar_records(bars: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    """The last ``n`` bars of the first symbol as JSON records (a bundle's input example)."""
    first = bars.index.get_level_values("symbol")[0]
    tail = bars.xs(first, level="symbol", drop_level=False).tail(n)
    return [
        {
            "time": t.isoformat(),
            "symbol": str(sym),
            **{c: float(row[c]) for c in ("open", "high", "low", "close", "volume")},
        }
        for (sym, t), row in tail.iterrows()
    ]
