"""The whole default FeatureSpec on many bars: ns per bar per feature, batch engine.

python -m benchmarks.bench_spec [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlalgo.bars import make_bars
from mlalgo.config import load_pipeline
from mlalgo.features.batch import compute

ROOT = Path(__file__).resolve().parents[1]


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2000-01-01", periods=n, freq="min", tz="UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1e3, 1e4, n),
        }
    )
    return make_bars(frame, symbol="SYN")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=float, default=1e6)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
    bars = synthetic_bars(int(args.bars))
    compute(spec, bars.iloc[:1000])  # compile the numba kernels outside the timing
    best = min(_timed(lambda: compute(spec, bars)) for _ in range(args.repeat))
    n, k = len(bars), len(spec.features)
    print(f"default spec ({k} features: {', '.join(spec.names)})")
    print(
        f"{n:,} bars: {best * 1e3:.1f} ms total, {best / n * 1e9:.1f} ns per bar, "
        f"{best / n / k * 1e9:.1f} ns per bar per feature (best of {args.repeat})"
    )


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
