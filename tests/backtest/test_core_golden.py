"""The numba core, pinned bit for bit to its own past outputs on random books.

``core_golden.npz`` holds what :func:`mlalgo.backtest.core.portfolio_core` returned on the
cases below before its per-bar loop became :func:`mlalgo.backtest.core.advance` over
explicit state (which the paper account advances one bar at a time). A refactor of the core
must leave every number exactly as it was: equity, cash, units, fills, trades and the kill
bar, compared with ``np.array_equal``, not a tolerance. A deliberate change of the engine's
rules regenerates the file (``python tests/backtest/test_core_golden.py --write``) in the
same commit.

The cases reach every rule: one to four instruments with absent bars, NaN and flipping
targets, every sizing, both fills, per-bar slippage, fixed and proportional commission,
borrow, stops, take-profits, trailing stops, the kill switch, the daily-loss limit over
multi-bar days, position and leverage caps and a minimum trade.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from mlalgo.backtest.core import portfolio_core

GOLDEN = Path(__file__).with_name("core_golden.npz")
SEEDS = range(12)
FILLS = (False, True)  # fill_at_close
SIZINGS = (0, 1, 2)  # fraction, whole, units
CASES = [(seed, fill, sizing) for seed in SEEDS for fill in FILLS for sizing in SIZINGS]
OUTPUTS = ("equity", "cash", "units", "fills", "trades", "killed_at")


def golden_inputs(seed: int, fill_at_close: bool, sizing: int) -> tuple:  # type: ignore[type-arg]
    """The positional arguments of ``portfolio_core`` for one case."""
    rng = np.random.default_rng([2024, seed, int(fill_at_close), sizing])
    n = int(rng.integers(40, 120))
    m = int(rng.integers(1, 5))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0.0, 0.01, (n, m)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, (n, m))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, (n, m))))
    if rng.random() < 0.5:  # a cent grid: exact ties between levels and prices
        open_, high, low, close = (np.round(a, 2) for a in (open_, high, low, close))
    absent = rng.random((n, m)) < rng.uniform(0.0, 0.15)
    for i in range(m):
        absent[: int(rng.integers(0, n // 4)), i] = True
    for arr in (open_, high, low, close):
        arr[absent] = np.nan
    choices = np.array([np.nan, -1.0, -0.5, 0.0, 0.3, 0.7, 1.0, 1.5])
    blocks = rng.choice(choices, size=(n // 3 + 1, m), p=[0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    target = np.repeat(blocks, 3, axis=0)[:n] * rng.choice([1.0, 1.0, 3.0])
    target[rng.random((n, m)) < 0.1] = np.nan
    day = np.cumsum(rng.random(n) < rng.choice([1.0, 0.4, 0.2])).astype(np.int64)
    slip = rng.choice([0.0, 2e-4, 2e-3]) + rng.choice([0.0, 1.0]) * rng.uniform(0, 3e-3, (n, m))

    def maybe(low: float, high: float, off: float, p: float = 0.5) -> float:
        return float(rng.uniform(low, high)) if rng.random() < p else off

    return (
        open_,
        high,
        low,
        close,
        np.ascontiguousarray(target),
        day,
        float(rng.choice([300.0, 5_000.0, 500_000.0]) * rng.uniform(1.0, 2.0)),  # cash
        float(rng.choice([0.0, 1e-4, 1e-3])),  # commission rate
        float(rng.choice([0.0, 1.0, 5.0])),  # fixed commission
        slip,
        float(rng.choice([0.0, 50e-4 / 252, 2000e-4 / 252])),  # borrow per bar
        fill_at_close,
        sizing,
        float(rng.choice([1.0, 7.0, 25.0])),  # unit size
        maybe(0.2, 1.2, np.inf),  # max_position
        maybe(0.5, 2.0, np.inf),  # max_leverage
        float(rng.choice([0.0, 0.0, 0.01, 0.05])),  # min_trade
        maybe(0.005, 0.05, 0.0),  # stop_loss
        maybe(0.01, 0.08, 0.0),  # take_profit
        maybe(0.005, 0.05, 0.0),  # trailing_stop
        maybe(0.05, 0.3, 0.0, p=0.4),  # max_drawdown
        maybe(0.005, 0.04, 0.0, p=0.4),  # max_daily_loss
    )


def run_case(seed: int, fill_at_close: bool, sizing: int) -> dict[str, np.ndarray]:
    equity, cash, units, fills, k, trades, q, killed_at = portfolio_core(
        *golden_inputs(seed, fill_at_close, sizing)
    )
    return {
        "equity": equity,
        "cash": cash,
        "units": units,
        "fills": fills[:k],
        "trades": trades[:q],
        "killed_at": np.array(killed_at),
    }


def key(seed: int, fill_at_close: bool, sizing: int) -> str:
    return f"{seed}_{int(fill_at_close)}_{sizing}"


def inputs_digest(seed: int, fill_at_close: bool, sizing: int) -> str:
    """A hash of a case's inputs: a changed random stream is not a changed engine."""
    h = hashlib.sha256()
    for arg in golden_inputs(seed, fill_at_close, sizing):
        h.update(np.asarray(arg).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize(("seed", "fill_at_close", "sizing"), CASES)
def test_core_reproduces_its_golden_outputs_exactly(
    golden: dict[str, np.ndarray], seed: int, fill_at_close: bool, sizing: int
) -> None:
    name = key(seed, fill_at_close, sizing)
    assert str(golden[f"{name}/inputs"]) == inputs_digest(seed, fill_at_close, sizing), (
        "the random inputs changed (a new numpy random stream?), not the engine; regenerate "
        "core_golden.npz from an engine known to be right"
    )
    got = run_case(seed, fill_at_close, sizing)
    for out in OUTPUTS:
        want = golden[f"{name}/{out}"]
        assert got[out].shape == want.shape, out
        assert np.array_equal(got[out], want, equal_nan=True), out


def test_the_golden_cases_reach_every_rule(golden: dict[str, np.ndarray]) -> None:
    reasons: set[int] = set()
    killed = open_at_end = 0
    for case in CASES:
        name = key(*case)
        reasons |= set(golden[f"{name}/fills"][:, 5].astype(int).tolist())
        killed += int(golden[f"{name}/killed_at"]) >= 0
        open_at_end += int((golden[f"{name}/trades"][:, 10] == 6).sum())
    assert reasons == set(range(6))
    assert killed >= 3
    assert open_at_end >= 10


def write_golden() -> None:
    arrays: dict[str, np.ndarray] = {}
    for case in CASES:
        name = key(*case)
        for out, arr in run_case(*case).items():
            arrays[f"{name}/{out}"] = arr
        arrays[f"{name}/inputs"] = np.array(inputs_digest(*case))
    np.savez_compressed(GOLDEN, **arrays)  # type: ignore[arg-type]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/backtest/test_core_golden.py --write")
    write_golden()
