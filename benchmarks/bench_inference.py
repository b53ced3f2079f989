"""Per-call latency of the bundle's model: ``lgb.Booster.predict`` vs ``CompiledModel``.

python -m benchmarks.bench_inference [--calls 20000] [--imports 5]

Trains a booster as the default pipeline does (pipelines/train.yaml: its symbols, dates, label
and LightGBM parameters, 200 trees of 15 leaves on 8 features) on the bundled sample, saves it
to LightGBM's text format and loads that text: ``lgb.Booster(model_str=...)``, the peer, called
as the bundle calls it today, and ``CompiledModel.from_text`` in its default layout
(``bitmask``, as these trees have at most 64 leaves) and, in the ``(walk)`` rows, in the
node-by-node walk it falls back to for larger trees. Each call is timed alone
(``time.perf_counter_ns``, timer included) on rows of real features, after an untimed warm-up;
p50/p99 for 1 row and 100 rows. All must return the same doubles for every row or the script
stops. Then, in fresh interpreters with numpy already imported, what each path costs to import
and to load the model, and whether pandas or scikit-learn came with it. Plain text, no
assertions on time: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlalgo.config import load_pipeline
from mlalgo.data.sample import load_sample
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels, reach
from mlalgo.model.compiled import CompiledModel
from mlalgo.model.estimators import make_estimator

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{load}
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1,
                  "pandas": "pandas" in sys.modules, "sklearn": "sklearn" in sys.modules}}))
"""
PATHS = {
    "lightgbm": (
        "import lightgbm as lgb",
        "m = lgb.Booster(model_str=open({path}).read()); m.predict(np.zeros((1, {n})))",
    ),
    "mlalgo.model.compiled": (
        "from mlalgo.model.compiled import CompiledModel",
        "m = CompiledModel.from_text(open({path}).read()); m.predict_one(np.zeros({n}))",
    ),
}


def train_default_model() -> tuple[str, np.ndarray]:
    """The default pipeline's model on its data, as text, and the rows with every feature."""
    cfg = load_pipeline(ROOT / "pipelines" / "train.yaml")
    fetch, label, train = cfg.stages.fetch, cfg.stages.label, cfg.stages.train
    bars = load_sample(fetch.symbols, root=ROOT / "data" / "sample")
    times = bars.index.get_level_values("time")
    bars = bars.loc[
        (times >= pd.Timestamp(fetch.start, tz="UTC"))
        & (times <= pd.Timestamp(fetch.end, tz="UTC"))
    ]
    frame = compute(cfg.feature_spec, bars)
    x = frame.to_numpy(dtype=np.float64)
    y = make_labels(bars, horizon=label.horizon, entry=label.entry)["y"].to_numpy()
    complete = ~np.isnan(x).any(axis=1)
    keep = complete & ~np.isnan(y)
    params = train.model_dump(exclude={"model", "sample_weight", "logistic", "hist_gbm"})
    params["purge_bars"] = reach(label.horizon, label.entry)
    model = make_estimator("lightgbm", params, cfg.seed).fit(frame.loc[keep], y[keep])
    return model.booster_.model_to_string(), x[complete]


def timed_calls(step: Callable[[object], object], items: Sequence[object]) -> np.ndarray:
    """Nanoseconds of each call, timer included, after an untimed warm-up."""
    for item in items[:200]:
        step(item)
    clock = time.perf_counter_ns
    out = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        t0 = clock()
        step(item)
        out[i] = clock() - t0
    return out


def row(label: str, rows: int, ns: np.ndarray) -> float:
    p50, p99 = np.percentile(ns / 1e3, [50, 99])
    print(f"{label:<38} {rows:>5} {p50:>10.2f} {p99:>10.2f} {ns.size:>9,}")
    return float(p50)


def probe_imports(text: str, n_features: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.txt"
        path.write_text(text)
        print(
            f"\nimport and load, fresh interpreter each, numpy imported first, median of {repeats}"
        )
        print(f"{'path':<24} {'import ms':>10} {'load ms':>9}  pandas  sklearn")
        for name, (imports, load) in PATHS.items():
            load = load.format(path=repr(str(path)), n=n_features)
            runs = [_probe(imports, load) for _ in range(repeats)]
            imp = np.median([r["import"] for r in runs]) * 1e3
            ld = np.median([r["load"] for r in runs]) * 1e3
            heavy = f"{runs[0]['pandas']!s:<6}  {runs[0]['sklearn']}"
            print(f"{name:<24} {imp:>10.0f} {ld:>9.1f}  {heavy}")
        imports, load = PATHS["mlalgo.model.compiled"]
        load = load.format(path=repr(str(path)), n=n_features)
        cold = _probe(imports, load, numba_cache=Path(tmp) / "numba")
        print(
            f"compiled load with an empty numba cache (compiles, then caches): "
            f"{cold['load'] * 1e3:,.0f} ms"
        )


def _probe(imports: str, load: str, numba_cache: Path | None = None) -> dict:
    env = dict(os.environ)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    code = PROBE.format(imports=imports, load=load)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per 1-row case")
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters per path")
    args = parser.parse_args()

    text, x = train_default_model()
    booster = lgb.Booster(model_str=text)
    t0 = time.perf_counter()
    compiled = CompiledModel.from_text(text)
    load_ms = (time.perf_counter() - t0) * 1e3
    walk = CompiledModel.from_text(text, layout="walk")
    expected = booster.predict(x)
    for model in (compiled, walk):
        if not (
            np.array_equal(model.predict(x), expected)
            and np.array_equal([model.predict_one(r) for r in x], expected)
        ):
            sys.exit(f"{model} disagrees with lgb.Booster.predict; fix that before timing it")

    rng = np.random.default_rng(0)
    order = rng.integers(0, len(x), args.calls)
    singles = [x[i] for i in order]
    singles_2d = [x[i : i + 1] for i in order]
    starts = rng.integers(0, len(x) - 100, max(args.calls // 10, 200))
    blocks = [x[s : s + 100] for s in starts]
    timer = timed_calls(lambda _: None, singles)

    print(
        f"inference: the default pipeline's model, {compiled.n_trees} trees, "
        f"{compiled.n_splits} splits, {compiled.n_features} features "
        f"({', '.join(compiled.feature_names)})"
    )
    print(
        f"rows: {len(x):,} rows of real features; both layouts bit-equal to "
        f"lgb.Booster.predict on all of them "
        f"(max abs diff {np.abs(compiled.predict(x) - expected).max():.1e})"
    )
    print(
        f"CompiledModel.from_text {load_ms:.0f} ms here (parsing, and numba loading its cache "
        f"or compiling); "
        f"timer overhead alone: p50 {np.median(timer) / 1e3:.2f} us per call\n"
    )
    print(f"{'call':<38} {'rows':>5} {'p50 us':>10} {'p99 us':>10} {'calls':>9}")
    peer_1 = row("lgb.Booster.predict (as the bundle)", 1, timed_calls(booster.predict, singles_2d))
    row(
        "lgb.Booster.predict num_threads=1",
        1,
        timed_calls(lambda r: booster.predict(r, num_threads=1), singles_2d),
    )
    ours_1 = row("CompiledModel.predict", 1, timed_calls(compiled.predict, singles_2d))
    one = row("CompiledModel.predict_one", 1, timed_calls(compiled.predict_one, singles))
    walk_one = row("CompiledModel.predict_one (walk)", 1, timed_calls(walk.predict_one, singles))
    peer_100 = row("lgb.Booster.predict (as the bundle)", 100, timed_calls(booster.predict, blocks))
    row(
        "lgb.Booster.predict num_threads=1",
        100,
        timed_calls(lambda r: booster.predict(r, num_threads=1), blocks),
    )
    ours_100 = row("CompiledModel.predict", 100, timed_calls(compiled.predict, blocks))
    row("CompiledModel.predict (walk)", 100, timed_calls(walk.predict, blocks))

    print("\nratio lgb.Booster.predict / compiled, p50:")
    print(
        f"  1 row,    predict_one   {peer_1 / one:6.1f}x   (walk layout {peer_1 / walk_one:.1f}x)"
    )
    print(f"  1 row,    predict       {peer_1 / ours_1:6.1f}x")
    print(f"  100 rows, predict       {peer_100 / ours_100:6.1f}x")
    print(f"  per row at 100 rows: lgb {peer_100 * 10:.0f} ns, compiled {ours_100 * 10:.0f} ns")

    probe_imports(text, compiled.n_features, args.imports)


if __name__ == "__main__":
    main()
