"""Walk-forward training: every prediction comes from a model that never saw that bar or its label.

Training belongs here, not in the simulator: the backtest only consumes the stitched
out-of-sample probabilities this module returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from mlalgo.model.splits import Fold, PurgedWalkForward
from mlalgo.model.weights import uniqueness_weights

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """What walk-forward needs of a model: scikit-learn's fit / predict_proba."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, times: Any = None) -> Any: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class WalkForwardResult:
    proba: pd.Series  # out-of-sample P(up), indexed like the features; NaN where not predicted
    folds: pd.DataFrame  # one row per fold: ranges, sizes and classification scores
    importance: pd.DataFrame | None = None  # fold x feature, for models that report it


def walk_forward(
    X: pd.DataFrame,
    labels: pd.DataFrame,
    splitter: PurgedWalkForward,
    make_estimator: Callable[[], Classifier],
    *,
    sample_weight: Literal["none", "uniqueness"] = "none",
    on_fold: Callable[[dict[str, Any], np.ndarray], None] | None = None,
) -> WalkForwardResult:
    """Fit one model per fold on purged past data and predict the fold's test block.

    ``on_fold(row, proba)`` is called after each fold with the fold's row and the predictions
    so far (NaN where not yet predicted); tuning scores the prefix there and may stop the run
    by raising.

    The estimator also gets each training row's time, so anything it holds out internally
    (early stopping) is the latest slice of the window; uniqueness weights are computed from
    the fold's own training labels, so no test-block label can shape a training weight.
    """
    usable = X.notna().all(axis=1).to_numpy()
    y = labels["y"].to_numpy()
    times = X.index.get_level_values("time").tz_convert(None).to_numpy()
    t1 = labels["t1"].to_numpy(dtype="datetime64[ns]").copy()
    t1[~usable | np.isnan(y)] = np.datetime64("NaT")
    X_arr = X.to_numpy(dtype=np.float64)
    proba = np.full(len(X), np.nan)
    rows = []
    importances: list[np.ndarray] = []
    for fold in splitter.folds(times, t1):
        test = fold.test[usable[fold.test]]
        if len(fold.train) == 0:
            raise ValueError(
                f"fold {fold.index} (test from {fold.test_start}) has no training rows after "
                "feature warm-up and purging; raise stages.backtest.min_train_bars"
            )
        model = make_estimator()
        train_X = X.iloc[fold.train]
        weights = training_weights(sample_weight, train_X, labels.iloc[fold.train])
        model.fit(
            train_X,
            y[fold.train],
            sample_weight=weights,
            times=train_X.index.get_level_values("time"),
        )
        if len(test):
            proba[test] = model.predict_proba(X_arr[test])[:, 1]
        if hasattr(model, "feature_importances_"):
            importances.append(np.asarray(model.feature_importances_, dtype=np.float64))
        rows.append(_fold_row(fold, times, test, y, proba))
        if on_fold is not None:
            on_fold(rows[-1], proba)
        log.debug("fold %d: %d train, %d test rows", fold.index, len(fold.train), len(test))
    if not rows:
        raise ValueError("walk-forward produced no folds; fetch a longer range")
    importance = (
        pd.DataFrame(importances, columns=list(X.columns))
        if len(importances) == len(rows)
        else None
    )
    return WalkForwardResult(
        pd.Series(proba, index=X.index, name="proba"), pd.DataFrame(rows), importance
    )


def training_weights(
    kind: Literal["none", "uniqueness"], X: pd.DataFrame, labels: pd.DataFrame
) -> np.ndarray | None:
    """Sample weights for these training rows: none, or the average uniqueness of their labels."""
    if kind == "none":
        return None
    return uniqueness_weights(
        X.index.get_level_values("time"), labels["t1"], X.index.get_level_values("symbol")
    )


def _fold_row(
    fold: Fold, times: np.ndarray, test: np.ndarray, y: np.ndarray, proba: np.ndarray
) -> dict[str, Any]:
    scored = test[~np.isnan(y[test])]
    yt, pt = y[scored], proba[scored]
    return {
        "fold": fold.index,
        "train_start": _utc(times[fold.train].min()),
        "train_end": _utc(times[fold.train].max()),
        "test_start": _utc(fold.test_start),
        "test_end": _utc(fold.test_end),
        "n_train": len(fold.train),
        "n_test": len(test),
        "accuracy": accuracy_score(yt, pt > 0.5) if len(yt) else np.nan,
        "log_loss": log_loss(yt, pt, labels=[0, 1]) if len(yt) else np.nan,
        "auc": roc_auc_score(yt, pt) if len(np.unique(yt)) == 2 else np.nan,
    }


def _utc(t: np.datetime64) -> pd.Timestamp:
    """Splits work on naive datetime64; bar times are UTC, so fold bounds are reported in UTC."""
    return pd.Timestamp(t).tz_localize("UTC")


def oos_scores(proba: pd.Series, labels: pd.DataFrame) -> dict[str, float]:
    """Classification scores over all out-of-sample predictions that have a label."""
    mask = proba.notna().to_numpy() & labels["y"].notna().to_numpy()
    yt, pt = labels["y"].to_numpy()[mask], proba.to_numpy()[mask]
    if len(yt) == 0:
        return {"oos_accuracy": np.nan, "oos_log_loss": np.nan, "oos_auc": np.nan}
    return {
        "oos_accuracy": float(accuracy_score(yt, pt > 0.5)),
        "oos_log_loss": float(log_loss(yt, pt, labels=[0, 1])),
        "oos_auc": float(roc_auc_score(yt, pt)) if len(np.unique(yt)) == 2 else np.nan,
    }
