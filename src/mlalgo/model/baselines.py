"""Baseline signal classifiers with the LightGBM wrapper's interface, to tell skill from capacity.

If a scaled logistic regression or sklearn's histogram GBM matches LightGBM out of sample, the
edge is in the features, not the model. Both validate inputs, encode labels and accept
``sample_weight`` exactly like :class:`~mlalgo.model.lgbm.LightGBMSignalClassifier`, and are
deterministic for a fixed ``random_state``. Neither produces a LightGBM booster, so neither can be
exported as a bundle; ``model_kind`` tells the pipeline which one it holds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from mlalgo.model.lgbm import encode_binary, fit_times, holdout, predict_input
from mlalgo.model.weights import check_weights


class _BinarySignalClassifier(ClassifierMixin, BaseEstimator):
    """Input checks, label encoding and predict shared by the baselines."""

    model_kind: ClassVar[str]
    _allow_nan: ClassVar[bool] = False

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = self._allow_nan
        return tags

    def _fit_inputs(
        self, X: Any, y: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        finite: bool | str = "allow-nan" if self._allow_nan else True
        X_arr, y_arr = validate_data(self, X, y, dtype=np.float64, ensure_all_finite=finite)
        w = check_weights(sample_weight, len(X_arr))
        self.classes_, y01 = encode_binary(y_arr, w, type(self).__name__)
        return X_arr, y01.astype(int), w

    def _proba(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._proba(predict_input(self, X, allow_nan=self._allow_nan))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LogisticSignalClassifier(_BinarySignalClassifier):
    """StandardScaler + LogisticRegression, both fitted on the training window only.

    The scaler lives inside the estimator, so walk-forward refits it per fold and it never
    learns a mean or variance from test bars. Fitted: ``pipeline_``, ``classes_``, ``n_iter_``.
    ``times`` (no early stopping) and ``random_state`` (lbfgs is deterministic) are accepted only
    so every registered estimator is built and fitted the same way.
    """

    model_kind = "logistic"

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int = 42) -> None:
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, times: Any = None
    ) -> LogisticSignalClassifier:
        X_arr, y01, w = self._fit_inputs(X, y, sample_weight)
        logit = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        self.pipeline_ = Pipeline([("scale", StandardScaler()), ("logit", logit)])
        self.pipeline_.fit(X_arr, y01, scale__sample_weight=w, logit__sample_weight=w)
        self.n_iter_ = int(np.max(logit.n_iter_))
        return self

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline_.predict_proba(X))


class HistGBSignalClassifier(_BinarySignalClassifier):
    """sklearn's HistGradientBoostingClassifier with a fixed seed and no hidden random split.

    sklearn's own early stopping validates on a shuffled split, which leaks future bars into the
    choice of iterations. With ``early_stopping=True`` this wrapper instead passes the same
    time-ordered, purged inner slice as the LightGBM wrapper (see
    :func:`~mlalgo.model.lgbm.inner_split`) as ``X_val``. ``n_jobs`` caps its OpenMP threads, as
    ``num_threads`` does for LightGBM, so parallel trials do not oversubscribe the cores.
    Fitted: ``model_``, ``classes_``, ``n_iter_``, ``validation_start_``.
    """

    model_kind = "hist_gbm"
    _allow_nan = True

    def __init__(
        self,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 50,
        l2_regularization: float = 1.0,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        validation_fraction: float = 0.2,
        purge_bars: int = 0,
        random_state: int = 42,
        n_jobs: int = 2,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.purge_bars = purge_bars
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, times: Any = None
    ) -> HistGBSignalClassifier:
        X_arr, y01, w = self._fit_inputs(X, y, sample_weight)
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=bool(self.early_stopping),
            n_iter_no_change=self.n_iter_no_change,
            random_state=self.random_state,
        )
        self.validation_start_ = None
        fit_rows, valid = np.arange(len(X_arr)), None
        if self.early_stopping:
            fit_rows, valid, self.validation_start_ = holdout(
                fit_times(X, times, len(X_arr)), w, self.validation_fraction, self.purge_bars
            )
        val_set: dict[str, Any] = {}
        if valid is not None:
            w_valid = None if w is None else w[valid]
            val_set = {"X_val": X_arr[valid], "y_val": y01[valid], "sample_weight_val": w_valid}
        with threadpool_limits(limits=self.n_jobs, user_api="openmp"):
            self.model_.fit(
                X_arr[fit_rows],
                y01[fit_rows],
                sample_weight=None if w is None else w[fit_rows],
                **val_set,
            )
        self.n_iter_ = int(self.model_.n_iter_)
        return self

    def _proba(self, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=self.n_jobs, user_api="openmp"):
            return np.asarray(self.model_.predict_proba(X))
