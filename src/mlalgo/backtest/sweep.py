"""Parameter sweeps: one strategy family, many parameter sets, one price series, in parallel.

A grid search runs the same account rules hundreds of times on the same bars. Calling
:func:`~mlalgo.backtest.engine.simulate` once per parameter set from Python would build a
target array and a full result per set, and a peer library's vectorised sweep holds every
set's signals and equity as ``n x sets`` matrices (gigabytes at a million bars). Here one
numba ``prange`` loop builds a set's target in a per-thread buffer, runs it through
:func:`~mlalgo.backtest.core.run_into` (the engine every other backtest uses, so a row
of the sweep is exactly ``simulate`` on that set's target) and keeps only summary numbers.
Memory is a few length-``n`` arrays per thread, whatever the number of sets.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt
from numba import njit, prange

from mlalgo.backtest import core
from mlalgo.backtest.core import SIZING_CODES, run_into
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.engine import (
    DEFAULT_COST,
    FILL_CLOSE,
    FILL_NEXT_OPEN,
    SIZING_FRACTION,
    SIZING_WHOLE,
)

__all__ = ["SWEEP_KEYS", "crossover_target", "sma_crossover"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SWEEP_KEYS = (
    "fast",
    "slow",
    "final_equity",
    "total_return",
    "annual_return",
    "volatility",
    "sharpe",
    "max_drawdown",
    "n_trades",
    "exposure",
)
"""Keys of :func:`sma_crossover`'s result; the metrics are defined as in
:func:`mlalgo.backtest.metrics.summarize` (``n_trades`` counts a trade still open at the end)."""

# Rows of the kernel's output, in SWEEP_KEYS order after fast and slow.
_METRICS = SWEEP_KEYS[2:]


@njit(cache=True, nogil=True)
def _crossover_into(close: FloatArray, fast: int, slow: int, out: FloatArray) -> int:
    """1.0 where SMA(fast) > SMA(slow), else 0.0, NaN before bar ``slow - 1``; returns how
    many times the target changes (from the engine's starting 0), which bounds the fills.

    Each average is a sliding sum updated by one difference per bar: O(n) for any window, and
    its rounding grows like a random walk (about ``sqrt(t) * 1e-16`` of the price after ``t``
    bars), far below any spread a crossover could trade on.
    """
    sf = 0.0
    ss = 0.0
    last = 0.0
    changes = 0
    for t in range(close.shape[0]):
        x = close[t]
        sf += x - close[t - fast] if t >= fast else x
        ss += x - close[t - slow] if t >= slow else x
        if t < slow - 1:
            out[t] = np.nan
        else:
            v = 1.0 if sf / fast > ss / slow else 0.0
            out[t] = v
            if v != last:
                changes += 1
                last = v
    return changes


@njit(cache=True, nogil=True)
def _block_sum(x: FloatArray, lo: int, n: int) -> float:
    """NumPy's sum of a short stretch (``n <= 128``): eight accumulators, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += x[i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += x[i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise_sum(x: FloatArray) -> float:
    """``x`` summed in NumPy's order, so means and deviations match
    :mod:`mlalgo.backtest.metrics` to the last bit instead of drifting by ~1e-12 over a
    million bars as a running sum does.

    NumPy halves the array (at a multiple of 8) until a stretch is at most 128 long and adds
    the halves' sums. The same tree is walked with an explicit stack: numba's on-disk cache
    cannot hold a recursive function (numba issue 6061: a segfault once loaded).
    """
    n = x.shape[0]
    if n <= 128:
        return _block_sum(x, 0, n)
    depth = 64  # each level halves the length
    lo = np.empty(depth, dtype=np.int64)
    size = np.empty(depth, dtype=np.int64)
    left = np.empty(depth)  # a frame's left-half sum, once known
    has_left = np.zeros(depth, dtype=np.bool_)
    top = 0
    lo[0] = 0
    size[0] = n
    while True:
        m = size[top]
        if m > 128:  # descend into the left half
            half = m // 2
            half -= half % 8
            lo[top + 1] = lo[top]
            size[top + 1] = half
            has_left[top + 1] = False
            top += 1
            continue
        v = _block_sum(x, lo[top], m)
        top -= 1
        while top >= 0 and has_left[top]:  # right halves done: add them to their left
            v = left[top] + v
            top -= 1
        if top < 0:
            return v
        left[top] = v  # a left half done: go on with its right half
        has_left[top] = True
        half = size[top] // 2
        half -= half % 8
        lo[top + 1] = lo[top] + half
        size[top + 1] = size[top] - half
        has_left[top + 1] = False
        top += 1


@njit(cache=True, nogil=True)
def _metrics_into(
    equity: FloatArray,
    units: FloatArray,
    n_trades: int,
    cash: float,
    ppy: float,
    scratch: FloatArray,
    out: FloatArray,
) -> None:
    """The summary numbers of one run, defined as :func:`mlalgo.backtest.metrics.summarize`
    and computed with the same operations; ``scratch`` (length n) holds the returns."""
    n = equity.shape[0]
    final = equity[-1]
    total = final / cash - 1.0
    growth = 1.0 + total
    # One pass for the returns, whether they are all equal, the drawdown and the exposure.
    # The deepest point under each peak gives that peak's drawdown (division by a fixed peak
    # keeps the order), so one division per new peak instead of one per bar.
    first = equity[0] / cash - 1.0
    scratch[0] = first
    all_same = True
    peak = equity[0]
    low = peak
    mdd = 0.0
    held = 0
    for t in range(n):
        e = equity[t]
        if t > 0:
            r = e / equity[t - 1] - 1.0
            scratch[t] = r
            all_same = all_same and r == first
        if e > peak:
            mdd = min(mdd, low / peak - 1.0)
            peak = e
            low = e
        elif e < low:
            low = e
        held += units[t] != 0.0
    mdd = min(mdd, low / peak - 1.0)
    mean = _pairwise_sum(scratch) / n
    std = 0.0
    if n > 1:
        for t in range(n):
            d = scratch[t] - mean
            scratch[t] = d * d
        std = math.sqrt(_pairwise_sum(scratch) / (n - 1))
    out[0] = final
    out[1] = total
    out[2] = -1.0 if growth <= 0.0 else growth ** (ppy / n) - 1.0
    out[3] = std * math.sqrt(ppy)
    out[4] = 0.0 if n < 2 or all_same or not std > 0.0 else mean / std * math.sqrt(ppy)
    out[5] = mdd
    out[6] = n_trades
    out[7] = held / n


def _core_version() -> int:
    """A hash of the engine's source file."""
    digest = hashlib.sha256(Path(core.__file__).read_bytes()).digest()
    return int.from_bytes(digest[:7], "little")


def _compile_sweep(core_version: int) -> Callable[..., None]:
    """The parallel sweep, cached on disk for a given version of the engine.

    numba compiles :func:`~mlalgo.backtest.core.run_into` into the sweep, but keys its
    on-disk cache on this file alone: after a change to ``core.py`` a cached sweep would go on
    running the old engine. The contents of a function's closure are part of that key, so the
    sweep closes over a hash of ``core.py``, and a changed engine is a cache miss.
    """

    @njit(cache=True, parallel=True)
    def _sweep(
        open_: FloatArray,
        close: FloatArray,
        slip: FloatArray,
        fast: IntArray,
        slow: IntArray,
        cash: float,
        comm_rate: float,
        comm_fixed: float,
        borrow_rate: float,
        fill_at_close: bool,
        sizing: int,
        ppy: float,
        k: int,
        out: FloatArray,
    ) -> None:
        """Pairs ``c, c + k, c + 2k, ...`` run as task ``c`` of ``k`` (one task per thread).

        Interleaving the pairs spreads short and long windows (busy and quiet strategies) over
        the threads.
        """
        core_version  # noqa: B018  (a closure cell: part of numba's cache key)
        n = close.shape[0]
        col = (n, 1)
        days = np.arange(n)  # no daily-loss limit: the day only has to be a valid calendar
        for c in prange(k):
            # Private copies of the shared inputs: the engine updates the reference count of every
            # array it is passed on each of its inner calls, and threads sharing an array would
            # contend for that counter (measured: 1.3x instead of 1.8x on two threads).
            o2 = open_.copy().reshape(col)
            c2 = close.copy().reshape(col)
            s2 = slip.copy().reshape(col)
            day = days.copy()
            target = np.empty(n)  # one per task, so one per thread
            scratch = np.empty(n)
            t2 = target.reshape(col)
            # The engine's outputs, reused from pair to pair: fresh ones would be faulted in
            # by the kernel each time, and two threads faulting contend for the same lock.
            equity = np.empty(n)
            cash_out = np.empty(n)
            units = np.empty(col)
            fills = np.empty((0, 6))
            trades = np.empty((0, 11))
            for p in range(c, fast.shape[0], k):
                changes = _crossover_into(close, fast[p], slow[p], target)
                cap = 2 * changes + 4  # each change opens at most one position, closed once
                if fills.shape[0] < cap:
                    fills = np.empty((2 * cap, 6))
                    trades = np.empty((2 * cap + 1, 11))
                n_trades = run_into(
                    o2,
                    c2,
                    c2,
                    c2,
                    t2,
                    day,
                    cash,
                    comm_rate,
                    comm_fixed,
                    s2,
                    borrow_rate,
                    fill_at_close,
                    sizing,
                    1.0,
                    np.inf,
                    np.inf,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    equity,
                    cash_out,
                    units,
                    fills,
                    trades,
                )[1]
                _metrics_into(equity, units[:, 0], n_trades, cash, ppy, scratch, out[:, p])

    return _sweep


_sweep = _compile_sweep(_core_version())


def _prices(name: str, values: npt.ArrayLike, func: str = "sma_crossover") -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D (got shape {arr.shape})")
    if arr.shape[0] == 0:
        raise ValueError(f"{func}: {name} is empty; pass at least one bar")
    bad = ~(np.isfinite(arr) & (arr > 0.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{func}: {name} must be finite and > 0 (bar {i} is {float(arr[i])}); "
            "drop or repair bad bars first"
        )
    return np.ascontiguousarray(arr)


def _windows(name: str, values: npt.ArrayLike, func: str) -> IntArray:
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim == 1 and arr.size == 0:  # np.asarray([]) is float64
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(
            f"{func}: {name} must be an integer or a 1-D array of integers "
            f"(got dtype {arr.dtype}, shape {arr.shape})"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def _pairs(
    fast: npt.ArrayLike, slow: npt.ArrayLike, n: int, func: str = "sma_crossover"
) -> tuple[IntArray, IntArray]:
    f = _windows("fast", fast, func)
    s = _windows("slow", slow, func)
    if f.shape != s.shape:
        raise ValueError(
            f"{func}: fast has {f.shape[0]} windows but slow has {s.shape[0]}; "
            "pass one (fast, slow) pair per position"
        )
    if f.shape[0] == 0:
        raise ValueError(f"{func}: no (fast, slow) pairs given")
    checks = (
        (f < 1, "fast window must be >= 1"),
        (f >= s, "fast window must be < slow window (drop such pairs from a grid)"),
        (s > n, f"slow window must be <= the {n} bars, or every bar is warm-up"),
    )
    for bad, rule in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{func}: pair {i} (fast={int(f[i])}, slow={int(s[i])}): the {rule}")
    return f, s


def crossover_target(close: npt.ArrayLike, fast: int, slow: int) -> FloatArray:
    """The target :func:`sma_crossover` trades for one pair, for inspection or for
    :func:`~mlalgo.backtest.engine.simulate`: 1.0 while SMA(fast) > SMA(slow), 0.0 otherwise,
    NaN before bar ``slow - 1`` (no decision while the slow average is undefined)."""
    c = _prices("close", close, "crossover_target")
    f, s = _pairs(fast, slow, c.shape[0], "crossover_target")
    if f.shape[0] != 1:
        raise ValueError("crossover_target: pass one fast and one slow window")
    out = np.empty(c.shape[0])
    _crossover_into(c, int(f[0]), int(s[0]), out)
    return out


def sma_crossover(
    close: npt.ArrayLike,
    fast: npt.ArrayLike,
    slow: npt.ArrayLike,
    *,
    open_: npt.ArrayLike | None = None,
    cash: float = 1.0,
    cost: CostModel = DEFAULT_COST,
    fill: str = FILL_CLOSE,
    sizing: str = SIZING_FRACTION,
    periods_per_year: float = 252,
) -> dict[str, np.ndarray]:
    """Backtest a long-only SMA crossover for every ``(fast[i], slow[i])`` pair, in parallel.

    Each pair's target is :func:`crossover_target` (fully long while the fast average is
    above the slow one, flat otherwise) and its run is exactly
    ``simulate(open_, close, target, cash=cash, cost=cost, fill=fill, sizing=sizing)``.

    Parameters
    ----------
    close : array_like of float, shape (n,)
        Closing prices, finite and > 0; the averages and the marks use them.
    fast, slow : int or array_like of int, shape (pairs,)
        Windows in bars, ``1 <= fast < slow <= n`` pair by pair. A grid is passed flattened,
        e.g. ``f, s = np.meshgrid(fasts, slows); keep = f < s; sma_crossover(c, f[keep],
        s[keep])``. ``fast < slow`` is required because a swapped pair is nearly always a
        mistake, and the inverse rule is not long-only trend following.
    open_ : array_like of float, shape (n,), optional
        Opening prices; required with ``fill="next_open"``, unused with ``fill="close"``.
    cash, cost, fill, sizing, periods_per_year
        As for :func:`~mlalgo.backtest.engine.simulate`. The default ``fill="close"`` is the
        usual convention of vectorised sweeps; use ``"next_open"`` for honest figures.

    Returns
    -------
    dict[str, numpy.ndarray]
        The keys of :data:`SWEEP_KEYS`, one value per pair: ``fast``, ``slow`` and
        ``n_trades`` as int64, the rest float64.

    Notes
    -----
    The work is spread over numba's threads (``numba.set_num_threads``); each thread holds a
    target, the engine's per-bar outputs and its fills, so memory is ``O(n * threads)``.
    """
    if not isinstance(cost, CostModel):
        raise ValueError(f"sma_crossover: cost must be a CostModel (got {type(cost).__name__})")
    if fill not in (FILL_NEXT_OPEN, FILL_CLOSE):
        raise ValueError(
            f"sma_crossover: fill must be {FILL_NEXT_OPEN!r} or {FILL_CLOSE!r} (got {fill!r})"
        )
    if sizing not in (SIZING_FRACTION, SIZING_WHOLE):
        raise ValueError(
            f"sma_crossover: sizing must be {SIZING_FRACTION!r} or {SIZING_WHOLE!r} "
            f"(got {sizing!r})"
        )
    if isinstance(cash, bool) or not (math.isfinite(cash) and cash > 0):
        raise ValueError(f"sma_crossover: cash must be finite and > 0 (got {cash!r})")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(
            f"sma_crossover: periods_per_year must be finite and > 0 (got {periods_per_year!r})"
        )
    c = _prices("close", close)
    n = c.shape[0]
    if open_ is None:
        if fill == FILL_NEXT_OPEN:
            raise ValueError(
                "sma_crossover: fill='next_open' needs open_ (the prices the orders fill at)"
            )
        o = c
    else:
        o = _prices("open_", open_)
        if o.shape[0] != n:
            raise ValueError(
                f"sma_crossover: close has {n} bars but open_ has {o.shape[0]}; "
                "pass one open per bar"
            )
    f, s = _pairs(fast, slow, n)
    fill_at_close = fill == FILL_CLOSE
    slip = np.ascontiguousarray(cost.adverse_rates(c, fill_at_close), dtype=np.float64)
    if float(slip.max()) >= 1.0:
        i = int(np.argmax(slip))
        raise ValueError(
            f"sma_crossover: the cost model's adverse move at bar {i} is {slip[i]:.2%} of the "
            "price; it must stay below 100 % (a sell would otherwise fill at a price <= 0)"
        )
    threads = min(numba.get_num_threads(), f.shape[0])
    out = np.empty((len(_METRICS), f.shape[0]))
    _sweep(
        o,
        c,
        slip,
        f,
        s,
        float(cash),
        cost.commission_rate,
        float(cost.commission_fixed),
        cost.borrow_rate(periods_per_year),
        fill_at_close,
        SIZING_CODES[sizing],
        float(periods_per_year),
        threads,
        out,
    )
    result: dict[str, np.ndarray] = {"fast": f.copy(), "slow": s.copy()}
    for row, key in zip(out, _METRICS, strict=True):
        result[key] = row.astype(np.int64) if key == "n_trades" else row
    return result
