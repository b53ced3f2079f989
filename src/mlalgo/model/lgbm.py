"""Deterministic LightGBM signal models with scikit-learn conventions and honest early stopping.

``__init__`` only stores parameters; ``fit`` validates, trains and returns self; fitted state ends
in ``_``. Training goes through ``lgb.train`` so ``booster_`` saves to LightGBM's text format, the
bundle's model file (no pickles anywhere).

Early stopping is where walk-forward research usually leaks: stopping on the test fold picks the
number of trees that scores best on exactly the data being reported. Here the validation set is
always carved from what ``fit`` receives: the latest ``validation_fraction`` of its distinct times,
with ``purge_bars`` bars dropped before it so no inner training label reaches into it.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from mlalgo.model.weights import check_weights


def inner_split(
    times: Any, validation_fraction: float, purge_bars: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(train, valid)``: ``valid`` holds the latest ``validation_fraction`` of
    the distinct times, ``train`` the rows at least ``purge_bars`` distinct times before it.

    Splitting on distinct times, not rows, keeps every symbol's bar of one time on the same side.
    With ``purge_bars`` set to the label's reach, no inner training label overlaps the slice.

    >>> train, valid = inner_split([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0.2, purge_bars=2)
    >>> train.tolist(), valid.tolist()
    ([0, 1, 2, 3, 4, 5], [8, 9])
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if not isinstance(purge_bars, Integral) or purge_bars < 0:
        raise ValueError(f"purge_bars must be an int >= 0, got {purge_bars!r}")
    index = pd.Index(times)
    if index.hasnans:
        raise ValueError("times must not hold NaT/NaN: every training row needs its time")
    pos, calendar = pd.factorize(index, sort=True)
    n_valid = max(1, math.ceil(round(validation_fraction * len(calendar), 9)))
    first_valid = len(calendar) - n_valid
    train = np.flatnonzero(pos < first_valid - purge_bars)
    valid = np.flatnonzero(pos >= first_valid)
    if len(train) == 0:
        raise ValueError(
            f"{len(calendar)} distinct times leave no inner training rows after a "
            f"{n_valid}-bar validation slice and a {purge_bars}-bar purge; fit on more data, "
            "lower validation_fraction or purge_bars, or set early_stopping_rounds=None"
        )
    return train, valid


def holdout(
    times: Any, weight: np.ndarray | None, validation_fraction: float, purge_bars: int
) -> tuple[np.ndarray, np.ndarray, Any]:
    """:func:`inner_split` plus the slice's first time, refusing a slice that weighs nothing
    (its loss would be NaN and early stopping would silently keep the first tree)."""
    fit_rows, valid = inner_split(times, validation_fraction, purge_bars)
    if weight is not None and not weight[valid].any():
        raise ValueError(
            "every row of the inner validation slice has sample_weight 0 (rows without a label "
            "end?); drop unlabelled rows before fitting"
        )
    return fit_rows, valid, pd.Index(times)[valid].min()


def encode_binary(
    y: np.ndarray, sample_weight: np.ndarray | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y01)``; a signal is P(up), so exactly two classes with positive weight."""
    check_classification_targets(y)
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(
            f"Only binary classification is supported. The type of the target is {y_type}."
        )
    classes, y01 = np.unique(y, return_inverse=True)
    weighted = classes if sample_weight is None else np.unique(y[sample_weight > 0])
    if len(weighted) < 2:
        raise ValueError(
            f"{name} needs two classes with positive weight in y, got only {weighted.tolist()}; "
            "a training window with one class has nothing to separate (widen the window)"
        )
    return classes, y01.astype(np.float64)


def predict_input(est: BaseEstimator, X: Any, *, allow_nan: bool) -> np.ndarray:
    """Validate X for predict. A bare array after fitting on a frame is accepted silently:
    walk-forward and the live path pass arrays in the fitted column order (the bundle checks
    the names), and sklearn's per-call warning would fire once per fold."""
    check_is_fitted(est)
    finite: bool | str = "allow-nan" if allow_nan else True
    if hasattr(est, "feature_names_in_") and not hasattr(X, "columns"):
        arr = check_array(X, dtype=np.float64, ensure_all_finite=finite)
        if arr.shape[1] != est.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {type(est).__name__} is expecting "
                f"{est.n_features_in_} features as input."
            )
        return arr
    return validate_data(est, X, reset=False, dtype=np.float64, ensure_all_finite=finite)


def fit_times(X: Any, times: Any, n_samples: int) -> Any:
    """Times that order rows for the inner split: ``times`` if given, else the ``time`` level
    of a DataFrame index, else row positions (then row order must be time order)."""
    if times is None and "time" in (getattr(getattr(X, "index", None), "names", None) or ()):
        times = X.index.get_level_values("time")
    if times is None:
        return np.arange(n_samples)
    if len(times) != n_samples:
        raise ValueError(f"times has {len(times)} entries for {n_samples} rows of X")
    return times


class _LightGBMSignalModel(BaseEstimator):
    """Shared parameters and training; subclasses set the objective and the target encoding."""

    _objective: ClassVar[str]
    model_kind: ClassVar[str]

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        max_depth: int = -1,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        subsample_freq: int = 1,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.2,
        purge_bars: int = 0,
        random_state: int = 42,
        n_jobs: int = 2,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.purge_bars = purge_bars
        self.random_state = random_state
        self.n_jobs = n_jobs

    def lgb_params(self) -> dict[str, Any]:
        """LightGBM's own parameter names; ``deterministic`` + ``force_row_wise`` fix the result."""
        return {
            "objective": self._objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": self.subsample_freq,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs,
            "verbosity": -1,
        }

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM routes missing values natively
        return tags

    def _check_params(self) -> None:
        if not isinstance(self.random_state, Integral):
            raise ValueError(
                f"random_state must be an int (a fixed seed keeps refits identical), "
                f"got {self.random_state!r}"
            )
        if not isinstance(self.n_jobs, Integral) or self.n_jobs < 1:
            raise ValueError(f"n_jobs must be an int >= 1, got {self.n_jobs!r}")
        rounds = self.early_stopping_rounds
        if rounds is not None and (not isinstance(rounds, Integral) or rounds < 1):
            raise ValueError(f"early_stopping_rounds must be None or an int >= 1, got {rounds!r}")

    def _fit_booster(
        self, X: np.ndarray, target: np.ndarray, weight: np.ndarray | None, times: Any
    ) -> None:
        names = [str(n) for n in getattr(self, "feature_names_in_", [])] or [
            f"f{i}" for i in range(X.shape[1])
        ]
        evals: dict[str, Any] = {}
        self.validation_start_ = None
        if self.early_stopping_rounds is None:
            data = lgb.Dataset(X, label=target, weight=weight, feature_name=names)
            booster = lgb.train(self.lgb_params(), data, num_boost_round=self.n_estimators)
        else:
            fit_rows, valid, self.validation_start_ = holdout(
                times, weight, self.validation_fraction, self.purge_bars
            )
            w_fit, w_valid = (None, None) if weight is None else (weight[fit_rows], weight[valid])
            dfit = lgb.Dataset(X[fit_rows], target[fit_rows], weight=w_fit, feature_name=names)
            dvalid = lgb.Dataset(X[valid], target[valid], weight=w_valid, reference=dfit)
            callbacks = [
                lgb.early_stopping(
                    self.early_stopping_rounds, first_metric_only=True, verbose=False
                ),
                lgb.record_evaluation(evals),
            ]
            booster = lgb.train(
                self.lgb_params(),
                dfit,
                num_boost_round=self.n_estimators,
                valid_sets=[dvalid],
                valid_names=["valid"],
                callbacks=callbacks,
            )
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        self.evals_result_ = evals

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total split gain per feature, summing to 1 (scikit-learn's convention): which
        inputs the trees lean on, comparable across folds of different sizes."""
        gain = np.asarray(self.booster_.feature_importance(importance_type="gain"), float)
        total = float(gain.sum())
        return gain / total if total > 0 else gain

    def _raw_predict(self, X: Any) -> np.ndarray:
        arr = predict_input(self, X, allow_nan=True)
        return np.asarray(self.booster_.predict(arr, num_iteration=self.best_iteration_))


class LightGBMSignalClassifier(ClassifierMixin, _LightGBMSignalModel):
    """P(up) from LightGBM's binary objective; reproducible for a fixed seed at any ``n_jobs``.

    Fitted attributes: ``booster_``, ``classes_``, ``n_features_in_``, ``feature_names_in_``
    (only when X has string column names, as in scikit-learn), ``best_iteration_`` (the trees
    predict uses), ``evals_result_`` (validation curve, empty without early stopping) and
    ``validation_start_`` (first time of the inner validation slice, or None).

    ``fit(X, y, sample_weight=None, *, times=None)``: ``times`` orders rows for the inner
    validation split only; by default it is the ``time`` level of X's index, else row order.
    Pass it when X holds several symbols as a bare array, since the pipeline's rows are sorted
    by symbol first.
    """

    _objective = "binary"
    model_kind = "lightgbm"

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, times: Any = None
    ) -> LightGBMSignalClassifier:
        self._check_params()
        X_arr, y_arr = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        w = check_weights(sample_weight, len(X_arr))
        self.classes_, y01 = encode_binary(y_arr, w, type(self).__name__)
        self._fit_booster(X_arr, y01, w, fit_times(X, times, len(X_arr)))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self._raw_predict(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LightGBMSignalRegressor(RegressorMixin, _LightGBMSignalModel):
    """The forward return itself (L2 objective), for sizing by expected move rather than P(up).

    Same parameters, fitted attributes (without ``classes_``) and ``fit`` signature as
    :class:`LightGBMSignalClassifier`.
    """

    _objective = "regression"
    model_kind = "lightgbm_regressor"

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, times: Any = None
    ) -> LightGBMSignalRegressor:
        self._check_params()
        X_arr, y_arr = validate_data(
            self,
            X,
            y,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            ensure_min_samples=2,  # LightGBM cannot bag or split a single row
            y_numeric=True,
        )
        w = check_weights(sample_weight, len(X_arr))
        target = np.asarray(y_arr, dtype=np.float64)
        self._fit_booster(X_arr, target, w, fit_times(X, times, len(X_arr)))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._raw_predict(X)
