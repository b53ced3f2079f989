"""The signal estimators behind one registry, so configs pick a model by name.

Every estimator here follows scikit-learn conventions (``__init__`` stores, ``fit`` validates and
returns self, fitted state ends in ``_``), accepts ``fit(X, y, sample_weight=None, *,
times=None)`` and exposes ``predict_proba(X)[:, 1]`` as P(up), which is all walk-forward needs.
Only the LightGBM models produce a ``booster_`` the bundle can export.
"""

from __future__ import annotations

from typing import Any

from mlalgo.model.baselines import HistGBSignalClassifier, LogisticSignalClassifier
from mlalgo.model.lgbm import LightGBMSignalClassifier, LightGBMSignalRegressor

__all__ = [
    "ESTIMATORS",
    "HistGBSignalClassifier",
    "LightGBMSignalClassifier",
    "LightGBMSignalRegressor",
    "LogisticSignalClassifier",
    "make_estimator",
]

ESTIMATORS: dict[str, type] = {
    cls.model_kind: cls
    for cls in (LightGBMSignalClassifier, LogisticSignalClassifier, HistGBSignalClassifier)
}


def make_estimator(kind: str, params: dict[str, Any], seed: int) -> Any:
    """A fresh, unfitted estimator of ``kind`` with ``params`` and ``random_state=seed``.

    Unknown kinds and parameters fail here, at build time, with the valid choices listed,
    rather than as a TypeError deep inside a walk-forward fold.

    >>> make_estimator("logistic", {"C": 0.5}, seed=7)
    LogisticSignalClassifier(C=0.5, random_state=7)
    """
    if kind not in ESTIMATORS:
        raise ValueError(f"unknown estimator kind {kind!r}; known kinds: {sorted(ESTIMATORS)}")
    cls = ESTIMATORS[kind]
    valid = set(cls().get_params())
    if "random_state" in params:
        raise ValueError("pass the seed as make_estimator(..., seed=...), not in params")
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"unknown parameters {unknown} for {kind!r} ({cls.__name__}); "
            f"valid: {sorted(valid - {'random_state'})}"
        )
    return cls(**params, random_state=seed)
