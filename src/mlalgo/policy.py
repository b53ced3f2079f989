"""The decision policy: one pure function from a model's prediction to a target position.

The walk-forward backtest, ``mlalgo predict`` and the live executor all call :func:`decide`, so
the rule that turns a probability into a position can never differ between research and trading.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class DecisionPolicy(BaseModel):
    """Thresholds on P(up) and the size of a position, as a fraction of equity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_threshold: float = Field(0.55, ge=0.0, le=1.0)
    short_threshold: float = Field(0.45, ge=0.0, le=1.0)
    allow_short: bool = False
    size: float = Field(1.0, gt=0.0, le=10.0)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> DecisionPolicy:
        if self.short_threshold > self.long_threshold:
            raise ValueError(
                f"short_threshold ({self.short_threshold}) must not exceed "
                f"long_threshold ({self.long_threshold})"
            )
        return self


def decide(proba_up: np.ndarray | float, policy: DecisionPolicy) -> np.ndarray:
    """Target exposure for each prediction: +size, -size or 0; NaN where there is no prediction.

    NaN means "no decision" (features still warming up), which the engine treats as "keep the
    current position" rather than "go flat".

    >>> decide(np.array([0.7, 0.5, 0.2, np.nan]), DecisionPolicy(allow_short=True)).tolist()
    [1.0, 0.0, -1.0, nan]
    """
    p = np.asarray(proba_up, dtype=np.float64)
    target = np.zeros_like(p)
    target[p > policy.long_threshold] = policy.size
    if policy.allow_short:
        target[p < policy.short_threshold] = -policy.size
    target[np.isnan(p)] = np.nan
    return target


def describe(target: float) -> str:
    """A word for a target exposure, for people reading a signal."""
    if np.isnan(target):
        return "none"
    return "long" if target > 0 else "short" if target < 0 else "flat"
