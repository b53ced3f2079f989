"""Latency of the online feature engine: microseconds per ``OnlineFeatures.update(bar)``.

python -m benchmarks.bench_online [--bars 100000] [--passes 5]

Replays the real AAPL sample (several passes, a fresh engine each) and a synthetic random walk
through the default spec (pipelines/train.yaml), one bar at a time as a live feed would, and
prints p50/p99/max per update and updates per second; then the same per streaming twin. As a
reference it times what the online engine replaces: the batch engine recomputing the whole
history at each new bar. Plain text, no assertions: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mlalgo.config import load_pipeline
from mlalgo.data.bar import Bar
from mlalgo.data.sample import load_sample
from mlalgo.features.batch import compute_arrays
from mlalgo.features.online import OnlineFeatures, twin_for
from mlalgo.features.spec import FeatureSpec

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("open", "high", "low", "close", "volume")


def sample_bars(symbol: str = "AAPL") -> list[Bar]:
    frame = load_sample([symbol], root=ROOT / "data" / "sample")
    ms = frame.index.get_level_values("time").as_unit("ms").asi8.tolist()
    cols = [frame[c].to_numpy(dtype=np.float64).tolist() for c in COLUMNS]
    return [Bar(symbol, t, *row) for t, *row in zip(ms, *cols, strict=True)]


def synthetic_bars(n: int, seed: int = 0) -> list[Bar]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    rows = zip(open_.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True)
    return [Bar("SYN", 60_000 * i, o, h, lo, c, 1e3) for i, (o, h, lo, c) in enumerate(rows)]


def timed_calls(step: Callable[[object], object], items: Sequence[object]) -> np.ndarray:
    """Nanoseconds of each call, timer included."""
    clock = time.perf_counter_ns
    out = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        t0 = clock()
        step(item)
        out[i] = clock() - t0
    return out


def report(label: str, ns: np.ndarray) -> None:
    us = ns / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    print(
        f"{label:<34} p50 {p50:6.2f} us   p99 {p99:6.2f} us   max {us.max():8.1f} us   "
        f"{1e6 / us.mean():>9,.0f} updates/s   ({us.size:,} updates)"
    )


def engine_latency(spec: FeatureSpec, bars: Sequence[Bar], passes: int) -> np.ndarray:
    return np.concatenate([timed_calls(OnlineFeatures(spec).update, bars) for _ in range(passes)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=float, default=1e5, help="synthetic bars")
    parser.add_argument("--passes", type=int, default=5, help="replays of the AAPL sample")
    args = parser.parse_args()
    spec = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
    aapl = sample_bars()
    synthetic = synthetic_bars(int(args.bars))
    timer = timed_calls(lambda _: None, synthetic[:10_000])

    print(f"online features, default spec: {', '.join(spec.names)}")
    print(f"(timer overhead alone: p50 {np.median(timer) / 1e3:.2f} us per call)\n")
    report(f"AAPL sample x{args.passes}", engine_latency(spec, aapl, args.passes))
    report("synthetic random walk", engine_latency(spec, synthetic, 1))

    print("\nper streaming twin, on the synthetic closes:")
    closes = [bar.close for bar in synthetic]
    for feature in spec.features:
        report(f"  {feature.name}", timed_calls(twin_for(feature).update, closes))

    history = {c: np.array([getattr(b, c) for b in synthetic]) for c in COLUMNS}
    compute_arrays(spec, {c: v[:100] for c, v in history.items()})  # compile outside the timing
    for n in (1_000, len(synthetic)):
        window = {c: v[:n] for c, v in history.items()}
        best = min(timed_calls(lambda w: compute_arrays(spec, w), [window] * 5))
        print(f"\nreference: batch.compute_arrays over {n:,} bars of history: {best / 1e3:,.0f} us")


if __name__ == "__main__":
    main()
