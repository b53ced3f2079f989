"""A deterministic LightGBM signal classifier with scikit-learn conventions.

``__init__`` only stores parameters; ``fit`` validates, trains and returns self; fitted state ends
in ``_``. It trains through ``lgb.train`` so the fitted ``booster_`` saves to LightGBM's text
format, the bundle's model file (no pickles anywhere).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class LightGBMSignalClassifier(ClassifierMixin, BaseEstimator):
    """Binary classifier of "the next move is up"; reproducible for fixed seed and threads."""

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
        self.random_state = random_state
        self.n_jobs = n_jobs

    def lgb_params(self) -> dict[str, Any]:
        """LightGBM's own parameter names; ``deterministic`` + ``force_row_wise`` fix the result."""
        return {
            "objective": "binary",
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

    def fit(self, X: Any, y: Any) -> LightGBMSignalClassifier:
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        X_arr = np.asarray(X, dtype=np.float64)
        y_arr = np.asarray(y, dtype=np.float64)
        if X_arr.ndim != 2 or len(X_arr) != len(y_arr):
            raise ValueError(
                f"X must be 2-D with one row per label; got {X_arr.shape}, {y_arr.shape}"
            )
        if not np.isin(y_arr, (0.0, 1.0)).all():
            raise ValueError("y must hold only 0 and 1 (drop unlabelled rows before fitting)")
        self.feature_names_in_ = np.array(
            names or [f"f{i}" for i in range(X_arr.shape[1])], dtype=object
        )
        self.n_features_in_ = X_arr.shape[1]
        self.classes_ = np.array([0, 1])
        data = lgb.Dataset(
            X_arr, label=y_arr, feature_name=list(self.feature_names_in_), free_raw_data=True
        )
        self.booster_ = lgb.train(self.lgb_params(), data, num_boost_round=self.n_estimators)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "booster_")
        X_arr = np.asarray(X, dtype=np.float64)
        if X_arr.ndim != 2 or X_arr.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got shape {X_arr.shape}")
        p = self.booster_.predict(X_arr)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        up = self.predict_proba(X)[:, 1] > 0.5
        return self.classes_[up.astype(int)]
