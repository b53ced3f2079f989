"""Probabilistic and deflated Sharpe ratios: how much a backtest Sharpe ratio can be trusted.

A sample Sharpe ratio is an estimate with an error that grows with skewness, fat tails and
short samples, and the best of many tried strategies is biased upward even when none has any
skill. The probabilistic Sharpe ratio (PSR; Bailey & López de Prado 2012, "The Sharpe Ratio
Efficient Frontier", Journal of Risk 15(2)) turns the estimate into the probability that the
true Sharpe ratio beats a benchmark; the deflated Sharpe ratio (DSR; Bailey & López de Prado
2014, "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
Non-Normality", Journal of Portfolio Management 40(5)) sets that benchmark to the Sharpe ratio
the best of N skill-less trials would be expected to reach.

Every Sharpe ratio here is **per period** (per bar, not annualised): the formulas use the
sample length n in periods, so they need the per-period ratio. Annualise only for display
(multiply by ``sqrt(ppy)``; variances of Sharpe ratios by ``ppy``). The sample Sharpe ratio is
``mean(r) / std(r, ddof=1)``, i.e. :func:`mlalgo.backtest.metrics.sharpe` with ``ppy=1``;
skewness and kurtosis are the usual (biased) moment estimators the papers use.

The standard normal CDF and its inverse come from the standard library (``math.erfc`` and
:class:`statistics.NormalDist`, accurate to double precision), so no SciPy is needed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = [
    "SharpeMoments",
    "deflated_sharpe_ratio",
    "deflated_sharpe_ratio_from_trials",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
]

FloatArray = npt.NDArray[np.float64]

_STD_NORMAL = NormalDist()


def _norm_cdf(z: float) -> float:
    # erfc keeps relative accuracy far into the lower tail, where 1 + erf(x) cancels.
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    return _STD_NORMAL.inv_cdf(p)


def _vector(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (got shape {arr.shape}); pass one value per period")
    return arr


def _moments(r: FloatArray) -> tuple[float, float, float] | None:
    """Sample Sharpe ratio (ddof=1), skewness and non-excess kurtosis; None if undefined."""
    if r.shape[0] < 2 or not bool(np.all(np.isfinite(r))) or bool(np.all(r == r[0])):
        return None
    # All three statistics are scale-free; rescaling keeps tiny or huge returns from
    # under- or overflowing in the third and fourth powers.
    r = r / float(np.max(np.abs(r)))
    dev = r - np.mean(r)
    sq = dev * dev  # products, not ** 3 and ** 4: numpy's pow is fifty times slower
    m2 = float(np.mean(sq))
    if not m2 > 0.0:
        return None
    sharpe = float(np.mean(r)) / math.sqrt(m2 * r.shape[0] / (r.shape[0] - 1))
    skew = float(np.mean(sq * dev)) / m2**1.5
    kurt = float(np.mean(sq * sq)) / m2**2
    return sharpe, skew, kurt


def _psr(sharpe: float, benchmark_sr: float, n: int, skew: float, kurt: float) -> float:
    """PSR from summary statistics (all per period); the formula of both papers."""
    # For any distribution kurt >= skew**2 + 1, so this is >= (skew * sharpe / 2 - 1) ** 2 >= 0;
    # it is zero only for a two-point sample at one exact Sharpe ratio, where the estimator's
    # asymptotic variance vanishes and the probability is undefined.
    var = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2
    if not var > 0.0:
        return math.nan
    z = (sharpe - benchmark_sr) * math.sqrt(n - 1) / math.sqrt(var)
    return _norm_cdf(z)


def probabilistic_sharpe_ratio(returns: npt.ArrayLike, benchmark_sr: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark_sr``.

    Why: a Sharpe ratio from a short, skewed or fat-tailed sample is far less certain than one
    from a long, normal sample; PSR prices that uncertainty (Bailey & López de Prado 2012, "The
    Sharpe Ratio Efficient Frontier") as
    ``Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR**2))`` with SR the
    sample Sharpe ratio, g3 the skewness and g4 the (non-excess) kurtosis.

    Parameters
    ----------
    returns
        1-D per-period returns (excess of the risk-free rate if one applies).
    benchmark_sr
        Per-period Sharpe ratio to beat, SR* (annual / ``sqrt(ppy)``).

    Returns
    -------
    float
        PSR in [0, 1]; NaN with fewer than two returns, zero variance or non-finite returns.

    Notes
    -----
    For g3 = 0, g4 = 3 (normal) it reduces to the textbook
    ``Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 + SR**2 / 2))``. PSR rises with n whenever
    SR > SR*, and with SR when g3 = 0 and SR* = 0; under strong positive skew (g3 * SR near 2)
    a larger SR can lower it, because the estimator's variance term is not monotone in SR.
    """
    r = _vector("probabilistic_sharpe_ratio: returns", returns)
    stats = _moments(r)
    if stats is None:
        return math.nan
    sharpe, skew, kurt = stats
    return _psr(sharpe, float(benchmark_sr), r.shape[0], skew, kurt)


@dataclass(frozen=True)
class SharpeMoments:
    """What PSR and DSR need of a return series, small enough to store with a tuning trial."""

    sharpe: float  # per period, ddof=1
    n: int
    skew: float
    kurt: float  # non-excess

    def psr(self, benchmark_sr: float = 0.0) -> float:
        """:func:`probabilistic_sharpe_ratio` of the series these moments summarise."""
        return _psr(self.sharpe, float(benchmark_sr), self.n, self.skew, self.kurt)


def sharpe_moments(returns: npt.ArrayLike) -> SharpeMoments | None:
    """Per-period Sharpe ratio, length, skewness and kurtosis; None where PSR is undefined."""
    r = _vector("sharpe_moments: returns", returns)
    stats = _moments(r)
    return None if stats is None else SharpeMoments(stats[0], r.shape[0], stats[1], stats[2])


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum per-period Sharpe ratio of ``n_trials`` independent skill-less trials.

    Why: picking the best of N backtests inflates its Sharpe ratio even when every true Sharpe
    ratio is zero; this is the level the winner reaches by luck alone, the False Strategy
    theorem's ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with g the
    Euler-Mascheroni constant (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio").

    Parameters
    ----------
    n_trials
        Number of independent trials N >= 1 (one trial: no selection, so 0.0).
    sr_variance
        Variance V >= 0 of the per-period Sharpe ratios across the trials.

    Returns
    -------
    float
        E[max SR] under the null, per period; an approximation of the exact order statistic
        that is within a few percent for N >= 10.
    """
    n = operator.index(n_trials)
    if n < 1:
        raise ValueError(f"expected_max_sharpe: n_trials must be >= 1 (got {n})")
    v = float(sr_variance)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"expected_max_sharpe: sr_variance must be finite and >= 0 (got {v!r})")
    if n == 1 or v == 0.0:
        return 0.0
    gamma = float(np.euler_gamma)
    quantiles = (1.0 - gamma) * _norm_ppf(1.0 - 1.0 / n) + gamma * _norm_ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(v) * quantiles


def deflated_sharpe_ratio(
    returns: npt.ArrayLike, n_trials: int, trial_sharpes_variance: float
) -> float:
    """Probability that the best of ``n_trials`` backtests has a real (positive) Sharpe ratio.

    Why: a PSR against zero ignores how many strategies were tried before this one was picked;
    the DSR (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio") is the PSR against
    :func:`expected_max_sharpe`, the Sharpe ratio the winner of that many skill-less trials
    would show, so it accounts for selection bias as well as sample length and non-normality.

    Parameters
    ----------
    returns
        1-D per-period returns of the selected (best) trial.
    n_trials
        Number of independent trials N >= 1 the selection was made from, this one included.
    trial_sharpes_variance
        Variance of the per-period Sharpe ratios across the trials.

    Returns
    -------
    float
        DSR in [0, 1]; NaN where :func:`probabilistic_sharpe_ratio` is. Equals the PSR against
        zero when N = 1 and is no larger for N > 1 with positive variance.
    """
    benchmark = expected_max_sharpe(n_trials, trial_sharpes_variance)
    return probabilistic_sharpe_ratio(returns, benchmark)


def deflated_sharpe_ratio_from_trials(
    best_returns: npt.ArrayLike, trial_sharpes: npt.ArrayLike
) -> float:
    """:func:`deflated_sharpe_ratio` with N and the variance taken from all trials' Sharpes.

    Parameters
    ----------
    best_returns
        1-D per-period returns of the selected trial.
    trial_sharpes
        1-D per-period Sharpe ratios of every trial, the selected one included; N is their
        count and the variance is taken with ``ddof=1`` (0 for a single trial).

    Returns
    -------
    float
        DSR in [0, 1], or NaN as for :func:`probabilistic_sharpe_ratio`.
    """
    srs = _vector("deflated_sharpe_ratio_from_trials: trial_sharpes", trial_sharpes)
    if srs.shape[0] == 0:
        raise ValueError("deflated_sharpe_ratio_from_trials: trial_sharpes is empty")
    if not bool(np.all(np.isfinite(srs))):
        raise ValueError("deflated_sharpe_ratio_from_trials: trial_sharpes must all be finite")
    variance = float(np.var(srs, ddof=1)) if srs.shape[0] > 1 else 0.0
    return deflated_sharpe_ratio(best_returns, srs.shape[0], variance)
