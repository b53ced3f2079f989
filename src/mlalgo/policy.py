"""The decision policy: one pure function from a model's prediction to a target position.

The walk-forward backtest, ``mlalgo predict`` and the live executor all call :func:`decide`, so
the rule that turns a probability into a position can never differ between research and trading.
The live executor decides one bar at a time through :func:`decide_one`, the same rule on one
float without numpy's per-call overhead; the tests hold it equal to :func:`decide` bit for bit.

A target is a signed fraction of equity. It is ``size`` by default; with ``kelly_fraction`` it
is that fraction of the Kelly bet for the predicted odds, capped at ``size`` (full Kelly is
notoriously aggressive when the probability is estimated, hence the fraction and the cap);
with ``vol_target`` it is then scaled by ``vol_target / volatility`` so that a position
carries about the same risk in calm and turbulent markets, by at most ``vol_cap``.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class DecisionPolicy(BaseModel):
    """Thresholds on P(up) and the size of a position, as a fraction of equity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_threshold: float = Field(0.55, ge=0.0, le=1.0)
    short_threshold: float = Field(0.45, ge=0.0, le=1.0)
    allow_short: bool = False
    size: float = Field(1.0, gt=0.0, le=10.0)
    kelly_fraction: float | None = Field(None, gt=0.0, le=1.0)
    payoff_ratio: float = Field(1.0, gt=0.0)  # average win / average loss for the Kelly bet
    vol_target: float | None = Field(None, gt=0.0, le=5.0)  # annualised, e.g. 0.15
    vol_window: int = Field(20, ge=2)
    vol_cap: float = Field(2.0, gt=0.0, le=10.0)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> DecisionPolicy:
        if self.short_threshold > self.long_threshold:
            raise ValueError(
                f"short_threshold ({self.short_threshold}) must not exceed "
                f"long_threshold ({self.long_threshold})"
            )
        return self


def kelly(proba_win: np.ndarray, payoff_ratio: float) -> np.ndarray:
    """The Kelly fraction ``p - (1 - p) / b`` of a bet won with probability ``p`` at odds ``b``.

    >>> kelly(np.array([0.6, 0.5]), 1.0).round(3).tolist()
    [0.2, 0.0]
    """
    p = np.asarray(proba_win, dtype=np.float64)
    return p - (1.0 - p) / payoff_ratio


def decide(
    proba_up: np.ndarray | float,
    policy: DecisionPolicy,
    volatility: np.ndarray | float | None = None,
) -> np.ndarray:
    """Target exposure for each prediction; NaN where there is no prediction.

    NaN means "no decision" (features still warming up), which the engine treats as "keep the
    current position" rather than "go flat". ``volatility`` is the annualised volatility known
    at the decision (see :func:`realised_volatility`); it is required with ``vol_target`` and
    a NaN or zero volatility gives no decision.

    >>> decide(np.array([0.7, 0.5, 0.2, np.nan]), DecisionPolicy(allow_short=True)).tolist()
    [1.0, 0.0, -1.0, nan]
    >>> decide(np.array([0.7]), DecisionPolicy(kelly_fraction=0.5)).round(3).tolist()
    [0.2]
    """
    p = np.asarray(proba_up, dtype=np.float64)
    long = p > policy.long_threshold
    short = (p < policy.short_threshold) & policy.allow_short
    target = np.zeros_like(p)
    if policy.kelly_fraction is None:
        target[long] = policy.size
        target[short] = -policy.size
    else:
        f = policy.kelly_fraction
        up = np.clip(f * kelly(p, policy.payoff_ratio), 0.0, policy.size)
        down = np.clip(f * kelly(1.0 - p, policy.payoff_ratio), 0.0, policy.size)
        target[long] = up[long]
        target[short] = -down[short]
    target[np.isnan(p)] = np.nan
    if policy.vol_target is not None:
        if volatility is None:
            raise ValueError(
                "decide: the policy targets volatility (vol_target is set) but no volatility "
                "was given; pass realised_volatility(close, policy.vol_window, periods_per_year)"
            )
        vol = np.asarray(volatility, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(vol > 0.0, np.minimum(policy.vol_target / vol, policy.vol_cap), np.nan)
        target = target * scale
    return target


def decide_one(proba_up: float, policy: DecisionPolicy, volatility: float | None = None) -> float:
    """``float(decide(proba_up, policy, volatility))`` for one prediction, in plain floats.

    The live per-bar path: :func:`decide` on a 0-d array spends microseconds in numpy calls,
    this a fraction of one. It performs :func:`decide`'s float64 operations in the same order,
    with ``np.clip``'s comparisons, so the two agree bit for bit (``tests/test_policy.py``).

    >>> decide_one(0.7, DecisionPolicy()), decide_one(0.2, DecisionPolicy(allow_short=True))
    (1.0, -1.0)
    """
    vol = math.nan
    if policy.vol_target is not None:
        if volatility is None:
            raise ValueError(
                "decide: the policy targets volatility (vol_target is set) but no volatility "
                "was given; pass realised_volatility(close, policy.vol_window, periods_per_year)"
            )
        vol = float(volatility)
    p = float(proba_up)
    if p != p:
        return math.nan
    target = 0.0
    long = p > policy.long_threshold
    short = p < policy.short_threshold and policy.allow_short
    if policy.kelly_fraction is None:
        if long:
            target = policy.size
        if short:
            target = -policy.size
    else:
        f, b, size = policy.kelly_fraction, policy.payoff_ratio, policy.size
        if long:
            target = _clip(f * (p - (1.0 - p) / b), size)
        if short:
            q = 1.0 - p
            target = -_clip(f * (q - (1.0 - q) / b), size)
    if policy.vol_target is None:
        return target
    if not vol > 0.0:
        return target * math.nan
    return target * min(policy.vol_target / vol, policy.vol_cap)


def _clip(x: float, size: float) -> float:
    """``np.clip(x, 0.0, size)`` on one float, with numpy's comparisons (``x > 0`` keeps ``x``,
    else 0; then ``x < size`` keeps ``x``, else ``size``)."""
    x = x if x > 0.0 else 0.0
    return x if x < size else size


def realised_volatility(close: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Annualised standard deviation of the last ``window`` log returns, known at each close.

    NaN until ``window`` returns exist. The live executor computes it from the same closes.
    """
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] <= window:
        return out
    r = np.diff(np.log(c))
    windows = np.lib.stride_tricks.sliding_window_view(r, window)
    out[window:] = windows.std(axis=1, ddof=1) * math.sqrt(periods_per_year)
    return out


def describe(target: float) -> str:
    """A word for a target exposure, for people reading a signal."""
    if np.isnan(target):
        return "none"
    return "long" if target > 0 else "short" if target < 0 else "flat"
