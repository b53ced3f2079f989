"""Speed of mlalgo's backtest against vectorbt (a sweep) and backtesting.py (one run), in one run.

Run from the repository root::

    python -m benchmarks.bench_backtest [--bars 1e6] [--pairs 100] [--repeat 3] [--days 2000]

Part 1, the sweep: a long-only SMA crossover for ``--pairs`` (fast, slow) pairs on ``--bars``
synthetic bars, with commission and slippage, filled at the close: vectorbt's
``Portfolio.from_signals`` against :func:`mlalgo.backtest.sweep.sma_crossover`. Each side runs
in its own subprocess, so its peak memory (``ru_maxrss``: the interpreter, the imports and
numba's compiler included) is its own; a first untimed call on a short slice compiles both
sides' numba code (or loads it from the cache) and is reported apart. The two must agree on
every pair's trades and returns, or the script stops.

Part 2, one run: a 10/20 SMA crossover (long on an up-cross, short on a down-cross), whole
units, commission on both sides, filled at the next open, on ``--days`` daily bars of the
bundled AAPL sample: backtesting.py's ``Backtest.run`` against mlalgo's ``run`` (bar frame in,
DataFrames and metrics out) and against the array level under it (``simulate`` and
``metrics.summary``). All must end on the same trades and equity.

Nothing here asserts a time: the goals (sweep at <= 1/20 of vectorbt's time and <= 1 GB,
single run >= 50x backtesting.py) are read off the printout; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
VOLATILITY = 1e-3  # per bar, so a million bars stay within a sane price range
CASH = 100.0
COMMISSION_BPS = 1.0
SLIPPAGE_BPS = 2.0
PERIODS_PER_YEAR = 252
# Both engines size an all-in buy as cash / (price * (1 + slippage) * (1 + fees)) and book the
# same fills, in a different order of operations; over ~10,000 round trips the final equities
# agree to ~1e-13 relative (measured), so anything beyond this is a real difference.
EQUITY_RTOL = 1e-9
SINGLE_FAST, SINGLE_SLOW = 10, 20
SINGLE_CASH = 10_000.0
SINGLE_COMMISSION_BPS = 10.0
SINGLE_ATOL = 1e-6  # dollars on 10,000; the parity test pins the same agreement


# ------------------------------------------------------------------------------- shared


def prices(bars: int, seed: int = SEED) -> np.ndarray:
    """A geometric random walk from 100, deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, VOLATILITY, bars)))


def pair_grid(pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Fast 5..50 (step 5) against slow 60, 80, ...: ten fast windows per slow window."""
    i = np.arange(pairs)
    return 5 * (1 + i % 10), 60 + 20 * (i // 10)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, interpreter and imports included."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def rss_mb() -> float:
    """Current resident memory (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return math.nan


def seconds(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


# ------------------------------------------------------------------ part 1: the sweep


def mlalgo_sweep(close: np.ndarray, fast: np.ndarray, slow: np.ndarray) -> dict[str, np.ndarray]:
    from mlalgo.backtest.costs import CostModel
    from mlalgo.backtest.sweep import sma_crossover

    cost = CostModel(commission_bps=COMMISSION_BPS, slippage_bps=SLIPPAGE_BPS)
    res = sma_crossover(
        close, fast, slow, cash=CASH, cost=cost, fill="close", periods_per_year=PERIODS_PER_YEAR
    )
    return {k: res[k] for k in ("total_return", "sharpe", "max_drawdown", "n_trades")}


def vectorbt_sweep(
    close: np.ndarray, fast: np.ndarray, slow: np.ndarray, parts: dict[str, float]
) -> dict[str, np.ndarray]:
    """The same strategy the idiomatic vectorbt way; ``parts`` receives the stage times.

    Equivalences: ``fees`` and ``slippage`` are the same fractions as the CostModel's
    commission and slippage, and vectorbt's default ``size=inf`` buys with all the cash, the
    fee reserved, exactly like ``target = 1.0`` with fractional sizing. Exits are "not above"
    rather than "below", because the sweep's target is 0.0 whenever the fast average is not
    above the slow one; during the warm-up both are no-ops on a flat account. Prices fill at
    the close (vectorbt's default ``price``), like ``fill="close"``.
    """
    import pandas as pd
    import vectorbt as vbt

    t0 = time.perf_counter()
    series = pd.Series(close)
    fast_ma = vbt.MA.run(series, window=list(fast), short_name="fast")
    slow_ma = vbt.MA.run(series, window=list(slow), short_name="slow")
    entries = fast_ma.ma_above(slow_ma)
    exits = ~entries
    del fast_ma, slow_ma
    t1 = time.perf_counter()
    pf = vbt.Portfolio.from_signals(
        series,
        entries,
        exits,
        direction="longonly",
        init_cash=CASH,
        fees=COMMISSION_BPS * 1e-4,
        slippage=SLIPPAGE_BPS * 1e-4,
        freq="1D",
    )
    del entries, exits
    t2 = time.perf_counter()
    columns = pf.wrapper.columns
    pairs = list(zip(columns.get_level_values(0), columns.get_level_values(1), strict=True))
    if pairs != list(zip(fast, slow, strict=True)):
        raise RuntimeError("vectorbt's columns are not in the order of the pairs")
    year = f"{PERIODS_PER_YEAR} days"
    out = {
        "total_return": pf.total_return().to_numpy(),
        "sharpe": pf.sharpe_ratio(year_freq=year).to_numpy(),
        "max_drawdown": pf.max_drawdown().to_numpy(),
        "n_trades": pf.trades.count().to_numpy(),
    }
    parts["signals"] = parts.get("signals", 0.0) + (t1 - t0)
    parts["from_signals"] = parts.get("from_signals", 0.0) + (t2 - t1)
    parts["stats"] = parts.get("stats", 0.0) + (time.perf_counter() - t2)
    return out


def sweep_worker(side: str, bars: int, pairs: int, repeat: int, out: Path) -> None:
    """One side of part 1, alone in this process; prints one JSON line."""
    warnings.simplefilter("ignore")
    if side == "vectorbt":
        import vectorbt  # noqa: F401  (imports are not timed)
    else:
        import mlalgo.backtest.sweep  # noqa: F401
    close = prices(bars)
    fast, slow = pair_grid(pairs)
    rss_ready = rss_mb()

    def call(parts: dict[str, float]) -> dict[str, np.ndarray]:
        if side == "vectorbt":
            return vectorbt_sweep(close, fast, slow, parts)
        return mlalgo_sweep(close, fast, slow)

    # Compile (or load from numba's cache) on a short slice, two pairs.
    short = min(bars, int(slow[:2].max()) + 1_000)
    first, _ = seconds(
        lambda: (
            vectorbt_sweep(close[:short], fast[:2], slow[:2], {})
            if side == "vectorbt"
            else mlalgo_sweep(close[:short], fast[:2], slow[:2])
        )
    )
    gc.collect()
    times = []
    parts: dict[str, float] = {}
    result: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        result = {}
        gc.collect()
        elapsed, result = seconds(lambda: call(parts))  # type: ignore[assignment]
        times.append(elapsed)
    np.savez(out, **result)
    line = {
        "first_call": first,
        "times": times,
        "parts": {k: v / repeat for k, v in parts.items()},
        "rss_ready_mb": rss_ready,
        "peak_rss_mb": peak_rss_mb(),
    }
    if side == "mlalgo":
        import numba

        line["threads"] = numba.get_num_threads()
    print(json.dumps(line))


def run_worker(side: str, args: argparse.Namespace, out: Path) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_backtest",
        "--worker",
        side,
        "--bars",
        str(args.bars),
        "--pairs",
        str(args.pairs),
        "--repeat",
        str(args.repeat),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"the {side} worker failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_sweep(args: argparse.Namespace) -> None:
    bars, pairs = int(args.bars), int(args.pairs)
    fast, slow = pair_grid(pairs)
    if slow.max() > bars:
        raise SystemExit(f"--bars must be at least the longest window, {slow.max()}")
    print(
        f"Part 1: long-only SMA crossover sweep, {bars:,} bars x {pairs} (fast, slow) pairs, "
        f"commission {COMMISSION_BPS:g} bp + slippage {SLIPPAGE_BPS:g} bp per fill, close fills"
    )
    print(
        f"fast {fast.min()}..{fast.max()}, slow {slow.min()}..{slow.max()}; median of {args.repeat}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        stats = {}
        results = {}
        for side in ("mlalgo", "vectorbt"):
            path = Path(tmp) / f"{side}.npz"
            stats[side] = run_worker(side, args, path)
            with np.load(path) as data:
                results[side] = {k: data[k] for k in data.files}
    ml, vb = stats["mlalgo"], stats["vectorbt"]
    t_ml = statistics.median(ml["times"])  # type: ignore[arg-type]
    t_vb = statistics.median(vb["times"])  # type: ignore[arg-type]
    parts = vb["parts"]
    print(
        f"\n{'side':<10} {'first call s':>12} {'run s':>9} {'runs s':>24} "
        f"{'RSS ready MB':>13} {'peak RSS MB':>12}"
    )
    for side, s, t in (("mlalgo", ml, t_ml), ("vectorbt", vb, t_vb)):
        runs = " ".join(f"{x:.2f}" for x in s["times"])  # type: ignore[union-attr]
        print(
            f"{side:<10} {s['first_call']:>12.2f} {t:>9.3f} {runs:>24} "
            f"{s['rss_ready_mb']:>13.0f} {s['peak_rss_mb']:>12.0f}"
        )
    print(
        f"vectorbt stages: signals {parts['signals']:.2f} s, from_signals "  # type: ignore[index]
        f"{parts['from_signals']:.2f} s, stats {parts['stats']:.2f} s"  # type: ignore[index]
    )
    print(f"mlalgo threads: {ml['threads']}")
    print(f"\nratio mlalgo / vectorbt (same outputs):      {t_ml / t_vb:.4f}   goal <= 0.05")
    no_stats = parts["signals"] + parts["from_signals"]  # type: ignore[index,operator]
    print(f"ratio mlalgo / vectorbt without its stats:   {t_ml / no_stats:.4f}   goal <= 0.05")
    print(
        f"ratio mlalgo / vectorbt from_signals alone:  {t_ml / parts['from_signals']:.4f}"  # type: ignore[index]
    )
    print(f"peak RSS mlalgo: {ml['peak_rss_mb']:.0f} MB   goal <= 1024 MB (interpreter included)")
    check_sweep(results["mlalgo"], results["vectorbt"])


def check_sweep(ml: dict[str, np.ndarray], vb: dict[str, np.ndarray]) -> None:
    trades_equal = ml["n_trades"] == vb["n_trades"]
    equity_rel = np.abs((1.0 + ml["total_return"]) / (1.0 + vb["total_return"]) - 1.0)
    print(
        f"\nagreement over {ml['n_trades'].size} pairs: trade counts equal on "
        f"{int(trades_equal.sum())}, total return max abs diff "
        f"{np.max(np.abs(ml['total_return'] - vb['total_return'])):.2e}, final equity max rel "
        f"diff {equity_rel.max():.2e}, Sharpe max abs diff "
        f"{np.max(np.abs(ml['sharpe'] - vb['sharpe'])):.2e}, max drawdown max abs diff "
        f"{np.max(np.abs(ml['max_drawdown'] - vb['max_drawdown'])):.2e}"
    )
    bad = ~trades_equal | (equity_rel > EQUITY_RTOL)
    if bad.any():
        i = int(np.argmax(bad))
        raise SystemExit(
            f"mlalgo and vectorbt disagree on {int(bad.sum())} pairs (first: pair {i}, "
            f"{int(ml['n_trades'][i])} vs {int(vb['n_trades'][i])} trades, total return "
            f"{ml['total_return'][i]!r} vs {vb['total_return'][i]!r}). Their averages are "
            "rounded differently, so an exact SMA tie could flip one decision; otherwise the "
            "engines differ."
        )


# ------------------------------------------------------------- part 2: one daily run


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """backtesting.py's indicator: pandas' rolling mean."""
    import pandas as pd

    return pd.Series(values).rolling(n).mean().to_numpy()


def backtesting_py_run(data: object) -> tuple[int, float]:
    """backtesting.py's README strategy; returns (trades, final equity)."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, SINGLE_FAST)
            self.slow = self.I(sma, self.data.Close, SINGLE_SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell()

    bt = Backtest(
        data,
        SmaCross,
        cash=SINGLE_CASH,
        commission=SINGLE_COMMISSION_BPS * 1e-4,
        exclusive_orders=True,
        trade_on_close=False,
        # mlalgo marks an open trade at the last close without exit costs; so does
        # backtesting.py when it leaves the trade open, so the final equities are comparable.
        finalize_trades=False,
    )
    stats = bt.run()
    return int(stats["# Trades"]) + len(stats["_strategy"].trades), float(stats["Equity Final [$]"])


def crossover_events(close: np.ndarray) -> np.ndarray:
    """The strategy as a target: +1 on an up-cross, -1 on a down-cross, NaN (hold) otherwise."""
    from mlalgo.features.kernels import sma as kernel_sma

    fast, slow = kernel_sma(close, SINGLE_FAST), kernel_sma(close, SINGLE_SLOW)
    target = np.full(close.shape[0], np.nan)
    above = fast > slow
    below = fast < slow
    target[1:][below[:-1] & above[1:]] = 1.0
    target[1:][above[:-1] & below[1:]] = -1.0
    return target


def mlalgo_run(bars: pd.DataFrame, buy_hold: bool) -> tuple[int, float]:
    """The public entry point: a bar frame and a target Series in, a BacktestResult out with
    the metrics (PSR and DSR included) and, as backtesting.py's statistics hold, the trades
    as a DataFrame and the equity curve; optionally buy & hold simulated alongside."""
    import pandas as pd

    from mlalgo.backtest import run
    from mlalgo.config import BacktestConfig, CostConfig

    config = BacktestConfig(
        fill="next_open",
        sizing="whole",
        initial_cash=SINGLE_CASH,
        costs=CostConfig(commission_bps=SINGLE_COMMISSION_BPS, slippage_bps=0.0),
    )
    target = pd.Series(crossover_events(bars["close"].to_numpy()), index=bars.index)
    res = run(bars, target, config, periods_per_year=PERIODS_PER_YEAR, buy_hold=buy_hold)
    assert len(res.trades) == res.metrics["n_trades"]  # built, as backtesting.py builds its own
    return int(res.metrics["n_trades"]), float(res.equity.iloc[-1])


def mlalgo_arrays(open_: np.ndarray, close: np.ndarray) -> tuple[int, float]:
    """The array level under ``run``: ``simulate`` and ``metrics.summary``."""
    from mlalgo.backtest.costs import CostModel
    from mlalgo.backtest.engine import simulate
    from mlalgo.backtest.metrics import summary

    res = simulate(
        open_,
        close,
        crossover_events(close),
        cash=SINGLE_CASH,
        cost=CostModel(commission_bps=SINGLE_COMMISSION_BPS, slippage_bps=0.0),
        fill="next_open",
        sizing="whole",
    )
    metrics = summary(res, initial=SINGLE_CASH, ppy=PERIODS_PER_YEAR)
    return int(metrics["n_trades"]), float(res.equity[-1])


def bench_single(args: argparse.Namespace) -> None:
    from mlalgo.data.sample import load_sample

    warnings.filterwarnings("ignore")  # backtesting.py's statistics trip pandas deprecations
    # backtesting.py draws a tqdm progress bar per run; without it, it only gets faster.
    os.environ["TQDM_DISABLE"] = "1"
    bars = load_sample(["AAPL"], root=ROOT / "data" / "sample").xs("AAPL", level="symbol")
    bars = bars.iloc[-int(args.days) :]
    data = bars[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
    data = data.set_axis(bars.index.tz_localize(None))
    open_, close = data["Open"].to_numpy(), data["Close"].to_numpy()
    print(
        f"\nPart 2: one run, {SINGLE_FAST}/{SINGLE_SLOW} SMA crossover long/short, whole units, "
        f"commission {SINGLE_COMMISSION_BPS:g} bp per side, next-open fills, "
        f"{len(data):,} AAPL daily bars ({data.index[0]:%Y-%m-%d} to {data.index[-1]:%Y-%m-%d})"
    )
    sides: list[tuple[str, Callable[[], tuple[int, float]], int]] = [
        ("backtesting.py", lambda: backtesting_py_run(data), args.single_repeat),
        ("mlalgo run()", lambda: mlalgo_run(bars, False), args.single_repeat * 5),
        ("mlalgo run()+b&h", lambda: mlalgo_run(bars, True), args.single_repeat * 5),
        ("mlalgo arrays", lambda: mlalgo_arrays(open_, close), args.single_repeat * 20),
    ]
    print(f"\n{'side':<15} {'first call ms':>14} {'run ms':>9} {'trades':>7} {'final equity':>14}")
    times = {}
    outcomes = {}
    for side, call, repeat in sides:
        first, outcomes[side] = seconds(call)
        times[side] = statistics.median(seconds(call)[0] for _ in range(repeat))
        trades, equity = outcomes[side]
        print(
            f"{side:<15} {first * 1e3:>14.1f} {times[side] * 1e3:>9.3f} {trades:>7} {equity:>14.6f}"
        )
    t_bt = times["backtesting.py"]
    print()
    for side in sides[1:]:
        print(f"speed-up backtesting.py / {side[0] + ':':<18} {t_bt / times[side[0]]:6.1f}x")
    print("goal >= 50x")
    bt_trades, bt_equity = outcomes["backtesting.py"]
    for side in (name for name, _, _ in sides[1:]):
        trades, equity = outcomes[side]
        print(
            f"agreement {side}: trades {trades} vs {bt_trades}, final equity diff "
            f"{abs(equity - bt_equity):.2e}"
        )
        if trades != bt_trades or abs(equity - bt_equity) > SINGLE_ATOL:
            raise SystemExit(f"{side} and backtesting.py disagree on the single run")


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=float, default=1e6, help="synthetic bars for the sweep")
    parser.add_argument("--pairs", type=int, default=100, help="(fast, slow) pairs in the sweep")
    parser.add_argument("--repeat", type=int, default=3, help="timed sweeps per side (median)")
    parser.add_argument("--days", type=int, default=2000, help="AAPL daily bars for part 2")
    parser.add_argument(
        "--single-repeat", type=int, default=7, help="timed backtesting.py runs (mlalgo: 20x)"
    )
    parser.add_argument("--skip-sweep", action="store_true", help="run part 2 only")
    parser.add_argument("--skip-single", action="store_true", help="run part 1 only")
    parser.add_argument("--worker", choices=("mlalgo", "vectorbt"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.bars = int(args.bars)
    if args.worker:
        sweep_worker(args.worker, args.bars, args.pairs, args.repeat, args.out)
        return
    import numba

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"vectorbt {version('vectorbt')}, backtesting {version('backtesting')}\n"
    )
    if not args.skip_sweep:
        bench_sweep(args)
    if not args.skip_single:
        bench_single(args)


if __name__ == "__main__":
    main()
