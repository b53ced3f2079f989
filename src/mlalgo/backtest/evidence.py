"""Evidence that a backtest result is more than luck: a permutation test and a drawdown bootstrap.

A single backtest is one draw. Two questions decide whether to believe it:

* **Is the timing real?** :func:`permutation_test` shuffles the position series, which keeps
  the time in market and the distribution of exposures but destroys any link between when the
  strategy is in and what the market does next. If randomly timed signals with the same
  exposure profile do as well, the Sharpe ratio came from being exposed, not from skill.
* **How bad could the drawdown have been?** The realised maximum drawdown is one path.
  :func:`bootstrap_max_drawdown` resamples the per-bar returns in blocks and reports the
  distribution of maximum drawdowns over many alternative paths with the same return dynamics.

Both are pure numpy and deterministic given ``seed``; the resamples are generated in chunks of
bounded size, so memory does not grow with ``n`` times the series length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlalgo.backtest.metrics import max_drawdown, sharpe

__all__ = ["BootstrapResult", "PermutationResult", "bootstrap_max_drawdown", "permutation_test"]

FloatArray = npt.NDArray[np.float64]

# Elements per chunk of resamples (8 MB of float64), so n * bars never has to fit in memory.
_CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True, eq=False)
class PermutationResult:
    """Observed annualised Sharpe ratio, the Sharpe ratios of the shuffled positions, p-value."""

    observed: float
    null: FloatArray
    p_value: float


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Observed maximum drawdown and the bootstrap samples of it (negative fractions)."""

    observed: float
    samples: FloatArray

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the sampled drawdowns; small ``q`` is the bad tail.

        ``quantile(0.05)`` is the drawdown that 5 % of the resampled paths did worse than.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile: q must be in [0, 1] (got {q!r}); use 0.05 for 5 %")
        return float(np.quantile(self.samples, q))


def _finite_vector(name: str, values: npt.ArrayLike, min_len: int) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (got shape {arr.shape}); pass one value per bar")
    if arr.shape[0] < min_len:
        raise ValueError(f"{name} has {arr.shape[0]} bars; pass at least {min_len}")
    if not bool(np.all(np.isfinite(arr))):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(
            f"{name} has {bad} NaN or infinite values; drop or fill them first "
            "(e.g. `np.nan_to_num(position)` for positions, drop the bars for returns)"
        )
    return arr


def _check_count(name: str, value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (got {value!r}); it is {what}")
    return int(value)


def _chunks(n: int, bars: int) -> list[int]:
    size = max(1, _CHUNK_ELEMENTS // max(bars, 1))
    return [min(size, n - start) for start in range(0, n, size)]


def _strategy_returns(
    returns_asset: FloatArray, positions: FloatArray, cost_per_turn: float
) -> FloatArray:
    """Per-bar returns of each row of ``positions``: held from the previous bar, less costs.

    The position decided at bar t-1 earns bar t's return, so the first bar earns nothing and
    the last position is never held. The book is flat before the first bar, so entering the
    first position costs a turn like any other change.
    """
    held = np.zeros_like(positions)
    held[:, 1:] = positions[:, :-1]
    turns = np.abs(np.diff(held, axis=1, prepend=0.0))
    return held * returns_asset - cost_per_turn * turns


def permutation_test(
    returns_asset: npt.ArrayLike,
    position: npt.ArrayLike,
    *,
    n: int = 1000,
    seed: int = 0,
    cost_per_turn: float = 0.0,
    ppy: float = 252,
) -> PermutationResult:
    """Could randomly timed signals with the same exposure profile have done as well?

    Parameters
    ----------
    returns_asset : array_like, shape (m,)
        The traded asset's simple return on each bar.
    position : array_like, shape (m,)
        Position decided at the close of each bar (e.g. 1 long, 0 flat, -1 short). The
        position at t-1 earns ``returns_asset[t]``; each change of position costs
        ``cost_per_turn`` times its size, charged on the bar it is first held.
    n : int
        Number of shuffles of the position series.
    seed : int
        Seed of the shuffles; equal seeds give equal results.
    cost_per_turn : float
        Return lost per unit of position traded (0.001 is 10 bps).
    ppy : float
        Bars per year, for the annualised Sharpe ratio of :func:`~mlalgo.backtest.metrics.sharpe`.

    Returns
    -------
    PermutationResult
        ``observed`` Sharpe ratio, the ``null`` Sharpe ratio of each shuffle and
        ``p_value = (1 + #{null >= observed}) / (n + 1)``. The +1 counts the observed order as
        one of the permutations, so the p-value is never 0 and is valid for any ``n``.

    Notes
    -----
    A shuffle keeps every position value, hence the time in market and the long/short mix, but
    not the order: it also breaks up holding periods, so shuffles usually trade more. With
    ``cost_per_turn > 0`` the null therefore pays more costs than a real strategy with the same
    exposure would, which makes the test lenient; run it with costs at 0 to test timing alone.
    """
    r = _finite_vector("permutation_test: returns_asset", returns_asset, min_len=2)
    pos = _finite_vector("permutation_test: position", position, min_len=2)
    if pos.shape != r.shape:
        raise ValueError(
            f"permutation_test: returns_asset has {r.shape[0]} bars but position has "
            f"{pos.shape[0]}; pass one position per bar, aligned with the returns"
        )
    n = _check_count("permutation_test: n", n, "the number of shuffles")
    if not math.isfinite(cost_per_turn) or cost_per_turn < 0.0:
        raise ValueError(
            f"permutation_test: cost_per_turn must be finite and >= 0 (got {cost_per_turn!r})"
        )
    observed = sharpe(_strategy_returns(r, pos[None, :], cost_per_turn)[0], ppy)
    rng = np.random.default_rng(seed)
    null = np.empty(n)
    done = 0
    for size in _chunks(n, pos.shape[0]):
        shuffled = rng.permuted(np.broadcast_to(pos, (size, pos.shape[0])), axis=1)
        for row in _strategy_returns(r, shuffled, cost_per_turn):
            null[done] = sharpe(row, ppy)
            done += 1
    null.setflags(write=False)
    p_value = (1.0 + float(np.count_nonzero(null >= observed))) / (n + 1.0)
    return PermutationResult(observed=observed, null=null, p_value=p_value)


def _stationary_indices(rng: np.random.Generator, size: int, bars: int, block: int) -> np.ndarray:
    """Indices of ``size`` stationary-bootstrap resamples of a circular series of ``bars``."""
    starts = rng.integers(0, bars, size=(size, bars))
    new_block = rng.random((size, bars)) < 1.0 / block
    new_block[:, 0] = True
    t = np.arange(bars)
    # Position at which the block covering each bar began: the latest new-block flag so far.
    began = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    first = np.take_along_axis(starts, began, axis=1)
    return (first + (t - began)) % bars


def _equity(returns: FloatArray) -> FloatArray:
    """Compounded equity of each row, starting at 1.0 before the first bar."""
    ones = np.ones((*returns.shape[:-1], 1))
    return np.concatenate((ones, np.cumprod(1.0 + returns, axis=-1)), axis=-1)


def bootstrap_max_drawdown(
    returns: npt.ArrayLike, *, n: int = 1000, block: int = 20, seed: int = 0
) -> BootstrapResult:
    """Distribution of the maximum drawdown over block-bootstrapped return paths.

    Uses the stationary bootstrap (Politis & Romano 1994, JASA 89(428)): blocks start at a
    uniformly random bar, wrap around the end of the series, and have geometric lengths with
    mean ``block``. Resampling single bars would treat returns as independent, but volatility
    clusters: losing days come in runs, and drawdowns are made of those runs, so an i.i.d.
    bootstrap understates how deep they get. Blocks keep the runs together. The stationary
    variant, unlike fixed-length moving blocks, gives a stationary resampled series and is less
    sensitive to the exact block length. ``block=1`` is the i.i.d. bootstrap.

    Parameters
    ----------
    returns : array_like, shape (m,)
        Simple per-bar returns of the strategy (or any equity curve).
    n : int
        Number of resampled paths.
    block : int
        Mean block length in bars; about a month (20 daily bars) covers volatility clusters.
    seed : int
        Seed of the resampling; equal seeds give equal results.

    Returns
    -------
    BootstrapResult
        ``observed`` is :func:`~mlalgo.backtest.metrics.max_drawdown` of the compounded
        equity ``1, (1+r0), (1+r0)(1+r1), ...`` (starting at 1.0 so a loss on the first bar
        counts), and ``samples`` the same for each resampled path of the same length.
    """
    r = _finite_vector("bootstrap_max_drawdown: returns", returns, min_len=1)
    n = _check_count("bootstrap_max_drawdown: n", n, "the number of resampled paths")
    block = _check_count("bootstrap_max_drawdown: block", block, "the mean block length in bars")
    observed = max_drawdown(_equity(r))
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    done = 0
    for size in _chunks(n, r.shape[0]):
        for curve in _equity(r[_stationary_indices(rng, size, r.shape[0], block)]):
            samples[done] = max_drawdown(curve)
            done += 1
    samples.setflags(write=False)
    return BootstrapResult(observed=observed, samples=samples)
