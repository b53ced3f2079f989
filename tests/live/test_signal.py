"""The live signal equals the batch scoring of the same bundle on the same real bars, bar by bar,
and its path imports no pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.bundle import export_bundle, load_bundle
from mlalgo.config import ExecutionConfig, load_pipeline
from mlalgo.data.bar import Bar
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.signal import LiveSignal
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy
from mlalgo.scoring import score

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
SYMBOLS = ["AAPL", "MSFT"]
POLICIES = {
    "thresholds": DecisionPolicy(long_threshold=0.52, short_threshold=0.48, allow_short=True),
    "kelly and volatility": DecisionPolicy(
        long_threshold=0.5,
        short_threshold=0.5,
        allow_short=True,
        kelly_fraction=0.5,
        vol_target=0.15,
        vol_window=20,
    ),
}


@pytest.fixture(scope="module")
def model_text(sample_bars: pd.DataFrame) -> str:
    spec = load_pipeline(TRAIN_YAML).feature_spec
    bars = sample_bars.loc[SYMBOLS]
    x, y = compute(spec, bars), make_labels(bars, horizon=1)["y"]
    mask = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    return (
        LightGBMSignalClassifier(n_estimators=40).fit(x[mask], y[mask]).booster_.model_to_string()
    )


def make_bundle(tmp_path: Path, model_text: str, policy: DecisionPolicy):
    path = export_bundle(
        tmp_path,
        "live",
        model_text=model_text,
        spec=load_pipeline(TRAIN_YAML).feature_spec,
        policy=policy,
        execution=ExecutionConfig(),
        input_example=[
            {"time": "2013-03-01T00:00:00+00:00", "symbol": "AAPL", "open": 1.0, "high": 1.0}
            | {"low": 1.0, "close": 1.0, "volume": 1.0}
        ],
        info={"symbols": SYMBOLS, "periods_per_year": 252},
    )
    return load_bundle(path)


def as_bars(frame: pd.DataFrame) -> list[Bar]:
    """Both symbols interleaved in time order, as a feed delivers them."""
    flat = frame.reset_index().sort_values(["time", "symbol"])
    ms = flat["time"].dt.as_unit("ms").astype("int64").tolist()
    cols = [flat[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    return [Bar(s, t, *v) for s, t, *v in zip(flat["symbol"], ms, *cols, strict=True)]


@pytest.mark.parametrize("name", list(POLICIES))
def test_live_signal_equals_batch_scoring_bar_by_bar(
    tmp_path: Path, model_text: str, sample_bars: pd.DataFrame, name: str
) -> None:
    bundle = make_bundle(tmp_path, model_text, POLICIES[name])
    frame = sample_bars.loc[SYMBOLS]
    batch = score(bundle, frame)
    live = LiveSignal(bundle)
    bars = as_bars(frame)
    live.warm_up(bars[:200])

    got = {(s.symbol, s.open_ms): s for s in map(live.update, bars[200:])}

    keys = list(got)
    idx = pd.MultiIndex.from_arrays(
        [[k[0] for k in keys], pd.to_datetime([k[1] for k in keys], unit="ms", utc=True)]
    )
    want = batch.reindex(idx)
    p = np.array([got[k].p_up for k in keys])
    target = np.array([got[k].target for k in keys])
    np.testing.assert_allclose(p, want["p_up"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(target, want["target"].to_numpy(), rtol=0, atol=1e-9)
    assert np.array([got[k].weight for k in keys]) == pytest.approx(target / 2, nan_ok=True)
    assert np.isfinite(target).sum() > 5000  # every bar past warm-up was decided
    if name == "kelly and volatility":
        assert len(np.unique(np.round(target[np.isfinite(target)], 6))) > 100  # sizes vary


def test_the_live_signal_path_imports_no_pandas(tmp_path: Path, model_text: str) -> None:
    bundle = make_bundle(tmp_path, model_text, POLICIES["kelly and volatility"])
    code = f"""
import sys
from mlalgo.bundle import load_bundle
from mlalgo.data.bar import Bar
from mlalgo.live.signal import LiveSignal
live = LiveSignal(load_bundle({str(bundle.path)!r}))
for i in range(120):
    o = 10.0 + i % 7
    s = live.update(Bar("AAPL", i * 86_400_000, o, o + 1, o - 1, o + 0.5, 1e6))
print(s.target == s.target)
print(sorted(m for m in ("pandas", "lightgbm", "sklearn", "mlflow", "optuna") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.split("\n")[:2] == ["True", "[]"]
