"""What the executor tests against the replay exchange share: the sample's stocks named as spot
pairs, a small bundle trained on their first bars, and an executor run on a thread until a
condition holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from mlalgo.bundle import export_bundle
from mlalgo.config import ExecutionConfig, RiskConfig, load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.live.executor import Executor
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy

ROOT = Path(__file__).resolve().parents[2]
SPOT = ["AAPLUSDT", "MSFTUSDT"]  # the sample's stocks, named as spot pairs
KEY, SECRET = "live-key", "live-secret"
EXAMPLE = [
    {"time": "2005-01-03T00:00:00+00:00", "symbol": "AAPL", "open": 1.0, "high": 1.0}
    | {"low": 1.0, "close": 1.0, "volume": 1.0}
]


def ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def spot_bars(
    sample_bars: pd.DataFrame, bars: int, *, skip: int = 1500, suffix: str = "USDT"
) -> pd.DataFrame:
    """``bars`` daily bars of AAPL and MSFT (as AAPLUSDT, MSFTUSDT) from the ``skip``-th on;
    ``suffix=""`` keeps the stock tickers (Alpaca's names)."""
    out = sample_bars.loc[["AAPL", "MSFT"]].rename(index=lambda s: f"{s}{suffix}", level="symbol")
    times = out.index.get_level_values("time")
    first = times.unique().sort_values()[skip]
    return out.loc[times >= first].groupby(level="symbol").head(bars)


def spot_bundle(
    root: Path,
    train: pd.DataFrame,
    *,
    name: str = "spot",
    unit: float = 10.0,
    trees: int = 30,
    threshold: float = 0.5,
    risk: RiskConfig | None = None,
    seed: int = 42,
    symbols: list[str] | None = None,
) -> Path:
    """A bundle trained on ``train`` that sizes in units (long only, as on a spot account);
    ``symbols`` (default :data:`SPOT`) is what its manifest says it trades."""
    spec = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
    x, y = compute(spec, train), make_labels(train, horizon=1)["y"]
    keep = x.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    clf = LightGBMSignalClassifier(n_estimators=trees, random_state=seed)
    booster = clf.fit(x[keep], y[keep]).booster_
    return export_bundle(
        root,
        name,
        model_text=booster.model_to_string(),
        spec=spec,
        policy=DecisionPolicy(long_threshold=threshold, short_threshold=threshold,
                              allow_short=False),
        execution=ExecutionConfig(sizing="units", unit_size=unit, risk=risk or RiskConfig()),
        input_example=EXAMPLE,
        info={"symbols": symbols or SPOT, "periods_per_year": 252},
    )  # fmt: skip


@contextmanager
def running(ex: Executor) -> Iterator[Callable[..., None]]:
    """``ex.run()`` on a thread for the block, which gets ``wait(condition, what, timeout)``
    (``condition`` is checked every 50 ms); stopped and joined after it, its error raised.
    (The journal's connection may be read from a condition: it is opened with
    ``check_same_thread=False``.)"""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            ex.run(poll_timeout=0.05)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)

    def wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert thread.is_alive(), f"the executor died waiting for {what}: {errors}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.05)

    thread.start()
    try:
        yield wait
    finally:
        ex.stop()
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert not thread.is_alive(), "the executor did not stop"


def run_until(ex: Executor, done: Callable[[], bool], timeout: float) -> bool:
    """Run ``ex`` until ``done()`` or ``timeout``; stop it and wait for it either way. Whether
    ``done()`` held."""
    with running(ex) as wait:
        try:
            wait(done, "done", timeout)
        except AssertionError:  # timed out, or the run died (its error is raised on exit)
            return False
    return True
