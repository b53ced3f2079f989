"""Latency of a served signal model: p50/p99 per ``POST /invocations`` over HTTP on 127.0.0.1.

python -m benchmarks.bench_serving [--requests 300]

Trains and registers the retrain pipeline's bundle on a shortened sample in a temporary MLflow
store, starts ``mlflow models serve -m models:/NAME@champion --env-manager local`` and sends real
AAPL bars: requests that return 1 and 100 signals (each carrying the feature spec's warm-up
history before them, since the model takes bars, not features). As the peer it serves the same
booster through MLflow's own LightGBM flavor, which takes precomputed feature rows (1 and 100)
and returns bare probabilities, and it times the in-process path (``signal_records``) to show
what HTTP and MLflow's schema handling add. Plain text, no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NAME = "bench-signal"


def build_store(root: Path) -> tuple[str, Path]:
    """A registered champion trained on AAPL and MSFT 2003-2008; returns the URI and bundle."""
    from mlalgo.config import MlflowConfig, load_pipeline
    from mlalgo.pipeline import run_pipeline
    from mlalgo.tracking import Tracker

    uri = f"sqlite:///{root}/mlruns.db"
    tracker = Tracker(MlflowConfig(tracking_uri=uri, experiment="bench"), root=root)
    cfg = load_pipeline(
        ROOT / "pipelines" / "retrain.yaml",
        [
            f"stages.fetch.path={ROOT / 'data' / 'sample'}",
            "stages.fetch.source=sample",
            "stages.fetch.symbols=[AAPL, MSFT]",
            "stages.fetch.start=2003-01-01",
            "stages.fetch.end=2008-12-31",
            "stages.backtest.min_train_bars=252",
            "stages.backtest.retrain_every=126",
            f"stages.export.model_name={NAME}",
            f"stages.export.dir={root / 'models'}",
            f"stages.backtest.report_dir={root / 'reports'}",
            "stages.promote.min_dsr=0",
            "stages.promote.max_drawdown=1",
        ],
    )
    result = run_pipeline(cfg, tracker=tracker, root=root)
    assert result.bundle_dir is not None
    return uri, result.bundle_dir


def log_lightgbm_peer(uri: str, bundle_dir: Path, features: pd.DataFrame) -> str:
    """The bundle's booster through mlflow.lightgbm: feature rows in, probabilities out."""
    import lightgbm as lgb
    import mlflow
    from mlflow.models import infer_signature

    from mlalgo.registry import fluent_store

    booster = lgb.Booster(model_file=str(bundle_dir / "model.txt"))
    example = features.head(2)
    with fluent_store(uri), mlflow.start_run():
        info = mlflow.lightgbm.log_model(
            booster,
            name="peer",
            signature=infer_signature(example, booster.predict(example.to_numpy())),
            input_example=example,
            pip_requirements=["lightgbm"],
        )
    return info.model_uri


def serve(model_uri: str, tracking_uri: str, port: int, log: Path) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    out = log.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{model_uri} did not come up:\n{log.read_text()}")


def post_latencies(port: int, body: bytes, n: int) -> np.ndarray:
    """Milliseconds per request (a new connection each, as most clients do)."""
    url = f"http://127.0.0.1:{port}/invocations"
    headers = {"Content-Type": "application/json"}
    out = np.empty(n)
    for i in range(-5, n):  # five warm-up requests
        req = urllib.request.Request(url, body, headers, method="POST")
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        if i >= 0:
            out[i] = (time.perf_counter() - t0) * 1e3
    return out


def split_body(frame: pd.DataFrame) -> bytes:
    doc = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))
    return json.dumps({"dataframe_split": doc}).encode()


def row(label: str, ms: np.ndarray) -> str:
    return f"{label:52} {np.percentile(ms, 50):9.2f} {np.percentile(ms, 99):9.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    from mlalgo.bundle import load_bundle
    from mlalgo.data.sample import load_sample
    from mlalgo.features.batch import compute
    from mlalgo.scoring import signal_records

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("training and registering the bundle ...", flush=True)
        uri, bundle_dir = build_store(root)
        bundle = load_bundle(bundle_dir)
        bars = load_sample(["AAPL"], root=ROOT / "data" / "sample")
        features = compute(bundle.spec, bars).dropna()
        flat = bars.reset_index()
        flat["time"] = flat["time"].dt.tz_localize(None)
        peer_uri = log_lightgbm_peer(uri, bundle_dir, features)
        warm = bundle.spec.warmup
        lines = [f"{'':52} {'p50 ms':>9} {'p99 ms':>9}"]
        ours = serve(f"models:/{NAME}@champion", uri, 5391, root / "ours.log")
        peer = serve(peer_uri, uri, 5392, root / "peer.log")
        try:
            for n in (1, 100):
                frame = flat.tail(warm + n)
                body = split_body(frame)
                got = signal_records(bundle, frame)
                assert len(got) == n, (len(got), n)
                ms = post_latencies(5391, body, args.requests)
                lines.append(row(f"mlalgo pyfunc, bars -> {n} signal(s) ({warm + n} bars)", ms))
                peer_ms = post_latencies(5392, split_body(features.tail(n)), args.requests)
                lines.append(row(f"peer mlflow.lightgbm, {n} feature row(s) -> proba", peer_ms))
                t = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    signal_records(bundle, frame)
                    t.append((time.perf_counter() - t0) * 1e3)
                lines.append(row(f"in process signal_records, {n} signal(s)", np.array(t)))
                ratio = np.percentile(ms, 50) / np.percentile(peer_ms, 50)
                lines.append(f"{'  ratio of p50s, mlalgo / peer':52} {ratio:9.2f}")
        finally:
            for proc in (ours, peer):
                proc.terminate()
                proc.wait(timeout=30)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
