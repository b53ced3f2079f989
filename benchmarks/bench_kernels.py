"""Speed of mlalgo's feature kernels against TA-Lib, measured in the same run.

Run from the repository root::

    python -m benchmarks.bench_kernels [--sizes 1e6,1e7] [--repeat 7]

Every figure is the best of ``--repeat`` timed calls, after one untimed call that compiles (or
loads from numba's cache) and warms up both sides. Our kernels are called through their public
wrappers, argument checks included. Nothing here asserts a time: the goal (ratio <= 1.0, ar1 at
<= 15 ns per value) is read off the table; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable

import numpy as np
import talib

from mlalgo.features import kernels

LN2 = math.log(2.0)


def best_seconds(call: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, after an untimed warm-up call."""
    call()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def prices(size: int, seed: int = 0) -> np.ndarray:
    """A geometric random walk from 100 with 0.01 % per-step volatility (intraday-like)."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, size)))


def talib_ar1(x: np.ndarray, w: int) -> tuple[np.ndarray, ...]:
    """The five outputs of ``kernels.ar1`` from TA-Lib's rolling SMA, VAR and CORREL.

    The fair peer: the same rolling OLS of ``x[s]`` on ``x[s-1]``, each moment one O(1)-per-bar
    TA-Lib call, combined with NumPy arithmetic.
    """
    prev = x[:-1]
    cur = x[1:]
    mean_prev = talib.SMA(prev, w)
    mean_cur = talib.SMA(cur, w)
    var_prev = talib.VAR(prev, w, 1.0)
    var_cur = talib.VAR(cur, w, 1.0)
    corr = talib.CORREL(prev, cur, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = corr * np.sqrt(var_cur / var_prev)
        alpha = mean_cur - beta * mean_prev
        resid = cur - alpha - beta * prev
        sd = np.sqrt(w * var_cur * (1.0 - corr * corr) / (w - 2))
        zscore = resid / sd
        half_life = np.where((beta > 0.0) & (beta < 1.0), -LN2 / np.log(beta), np.nan)
    return alpha, beta, resid, zscore, half_life


Indicator = Callable[[np.ndarray, int], np.ndarray]

# (name, ours through its public wrapper, TA-Lib's equivalent)
KERNELS: list[tuple[str, Indicator, Indicator]] = [
    ("rsi", kernels.rsi, lambda x, n: talib.RSI(x, n)),
    ("sma", kernels.sma, lambda x, n: talib.SMA(x, n)),
    ("ema", kernels.ema, lambda x, n: talib.EMA(x, n)),
    ("rolling_std", kernels.rolling_std, lambda x, n: talib.STDDEV(x, n, 1.0)),
]


def bench_indicators(sizes: list[int], repeat: int) -> None:
    print(f"{'kernel':<12} {'n':>4} {'values':>10} {'ours ms':>9} {'TA-Lib ms':>10} {'ratio':>6}")
    for size in sizes:
        x = prices(size)
        for name, ours, theirs in KERNELS:
            for n in (14, 200):
                t_ours = best_seconds(lambda f=ours, n=n, x=x: f(x, n), repeat)
                t_ta = best_seconds(lambda f=theirs, n=n, x=x: f(x, n), repeat)
                print(
                    f"{name:<12} {n:>4} {size:>10,} {t_ours * 1e3:>9.2f} {t_ta * 1e3:>10.2f}"
                    f" {t_ours / t_ta:>6.2f}"
                )


def bench_ar1(sizes: list[int], repeat: int) -> None:
    print(f"\n{'ar1 window':<12} {'values':>10} {'ours ns/value':>14} {'TA-Lib peer ns/value':>21}")
    for size in sizes:
        x = prices(size)
        for w in (60, 500):
            t_ours = best_seconds(lambda w=w, x=x: kernels.ar1(x, w), repeat)
            t_ta = best_seconds(lambda w=w, x=x: talib_ar1(x, w), repeat)
            print(f"{w:<12} {size:>10,} {t_ours / size * 1e9:>14.2f} {t_ta / size * 1e9:>21.2f}")


def bench_overhead(repeat: int) -> None:
    """Per-call cost on 16 values, where the work is negligible: the wrapper's price."""
    x = prices(16)
    calls = 1000
    for name, ours, theirs in KERNELS:
        t_ours = best_seconds(lambda f=ours: [f(x, 14) for _ in range(calls)], repeat) / calls
        t_ta = best_seconds(lambda f=theirs: [f(x, 14) for _ in range(calls)], repeat) / calls
        print(f"call overhead {name:<12} ours {t_ours * 1e6:5.2f} us   TA-Lib {t_ta * 1e6:5.2f} us")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7", help="comma-separated series lengths")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per figure (best)")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, TA-Lib {talib.__version__}; best of {args.repeat}\n"
    )
    bench_indicators(sizes, args.repeat)
    bench_ar1(sizes, args.repeat)
    print()
    bench_overhead(args.repeat)


if __name__ == "__main__":
    main()
