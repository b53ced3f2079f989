"""The online feature engine: one FeatureSpec, streamed bar by bar, equals the batch engine.

Invariant 1 of DESIGN.md, on the real sample first: at every bar, every feature of the default
spec agrees with ``batch.compute`` to 1e-9 and is NaN exactly where batch is NaN. Synthetic
series then force what the sample cannot: warm-up edges, flat stretches, jumps, tiny windows and
a 200k-bar run. Snapshots must continue bit for bit, and the engine must refuse bars that would
silently corrupt it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlalgo.bars import make_bars
from mlalgo.config import load_pipeline
from mlalgo.data.bar import Bar
from mlalgo.features import kernels
from mlalgo.features.batch import compute, compute_arrays
from mlalgo.features.online import (
    TWINS,
    AR1ZScoreStream,
    BollingerBStream,
    DistEMAStream,
    DistSMAStream,
    EMAStream,
    LogReturnStream,
    MACrossStream,
    MASpreadStream,
    OnlineFeatures,
    OnlineFeatureSet,
    RSIStream,
    SimpleReturnStream,
    SMAStream,
    StdStream,
    Stream,
    VolatilityStream,
    ZScoreStream,
    twin_for,
)
from mlalgo.features.spec import (
    FEATURE_TYPES,
    RSI,
    AR1ZScore,
    DistEMA,
    DistSMA,
    FeatureSpec,
    LogReturn,
    Volatility,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_pipeline(ROOT / "pipelines" / "train.yaml").feature_spec
SYMBOLS = ["AAPL", "IBM", "MSFT", "SPX"]
COLUMNS = ("open", "high", "low", "close", "volume")

# Small windows, so a few hundred bars cross every warm-up edge many times; a second input
# column exercises the multi-column path.
SMALL = FeatureSpec(
    features=(
        RSI(n=1),
        RSI(n=3),
        DistSMA(n=1),
        DistSMA(n=4),
        DistEMA(n=1),
        DistEMA(n=5),
        Volatility(n=2),
        Volatility(n=6),
        LogReturn(k=1),
        LogReturn(k=3),
        AR1ZScore(window=3),
        AR1ZScore(window=7),
        AR1ZScore(window=5, log=False),
        RSI(n=2, input="open"),
    )
)

RTOL = 1e-9
# Absolute floors for values near 0. Distances and returns carry ~1e-16 of absolute rounding.
# A z-score is a residual in units of its own standard error: the online twin is exact to a
# few ulps, but the batch kernel's O(1) path bounds its error in z units (absolute, however
# small z is), so z-scores get 1e-9 of that unit as their floor.
ATOL = 1e-12
ATOL_Z = 1e-9


def atol_for(name: str) -> float:
    return ATOL_Z if name.startswith("ar1_zscore") else ATOL


def assert_agree(online: np.ndarray, batch: np.ndarray, names: Sequence[str]) -> None:
    """Equal NaN patterns, and every value within RTOL (relative) plus the feature's floor."""
    assert online.shape == batch.shape
    nan_online = np.isnan(online)
    nan_batch = np.isnan(batch)
    if (nan_online != nan_batch).any():
        row, col = np.argwhere(nan_online != nan_batch)[0]
        pytest.fail(
            f"{names[col]} at bar {row}: online {online[row, col]}, batch {batch[row, col]}"
        )
    for col, name in enumerate(names):
        o = online[~nan_batch[:, col], col]
        b = batch[~nan_batch[:, col], col]
        excess = np.abs(o - b) - (RTOL * np.abs(b) + atol_for(name))
        if (excess > 0).any():
            i = int(np.argmax(excess))
            pytest.fail(f"{name}: online {o[i]!r} vs batch {b[i]!r} (|diff| {abs(o[i] - b[i])})")


def as_bars(frame: pd.DataFrame) -> list[Bar]:
    """One symbol's rows of a bar frame as pandas-free ``Bar`` objects, as a live feed sends."""
    symbol = frame.index.get_level_values("symbol")[0]
    ms = frame.index.get_level_values("time").as_unit("ms").asi8.tolist()
    cols = [frame[c].to_numpy(dtype=np.float64).tolist() for c in COLUMNS]
    return [Bar(symbol, t, *row) for t, *row in zip(ms, *cols, strict=True)]


def stream(spec: FeatureSpec, bars: Sequence[Bar]) -> np.ndarray:
    engine = OnlineFeatures(spec)
    return np.array([engine.update(bar) for bar in bars]).reshape(len(bars), len(spec.names))


def synthetic_frame(close: np.ndarray, symbol: str = "SYN") -> pd.DataFrame:
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2020-01-01", periods=close.size, freq="min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": 1.0,
        }
    )
    return make_bars(frame, symbol=symbol)


@pytest.fixture(scope="module")
def sample(sample_bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {s: sample_bars.loc[[s]] for s in SYMBOLS}


@pytest.fixture(scope="module")
def aapl_bars(sample: dict[str, pd.DataFrame]) -> list[Bar]:
    return as_bars(sample["AAPL"])


# ---------------------------------------------------------------- online == batch, real sample


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_online_equals_batch_at_every_bar_of_every_sample_symbol(
    sample: dict[str, pd.DataFrame], symbol: str
) -> None:
    frame = sample[symbol]
    engine = OnlineFeatures(SPEC)
    rows, ready = [], []
    for bar in as_bars(frame):
        rows.append(engine.update(bar))
        ready.append(engine.ready)

    assert_agree(np.array(rows), compute(SPEC, frame).to_numpy(), SPEC.names)
    assert ready == [i >= SPEC.warmup for i in range(len(frame))]


def test_update_returns_a_fresh_float64_vector_in_spec_order(aapl_bars: list[Bar]) -> None:
    engine = OnlineFeatures(SPEC)
    first = engine.update(aapl_bars[0])
    second = engine.update(aapl_bars[1])

    assert first.dtype == np.float64
    assert first.shape == (len(SPEC.names),)
    assert engine.names == SPEC.names
    assert first is not second
    assert np.isnan(first).all()


# ---------------------------------------------------------------- online == batch, synthetic


@st.composite
def price_paths(draw: st.DrawFn, max_len: int = 400) -> np.ndarray:
    """Positive random walks in basis-point ticks: flat stretches, ordinary moves, big jumps.

    Moves are whole basis points: far below that, the two engines' logs (numpy's vs libm's,
    which may differ in the last bit) already move a log-price z-score by more than 1e-9.
    """
    segment = st.one_of(
        st.integers(1, 40).map(lambda k: [0] * k),
        st.lists(st.integers(-150, 150), min_size=1, max_size=40),
        st.tuples(st.sampled_from([1, -3, 7]), st.integers(2, 30)).map(lambda s: [s[0]] * s[1]),
        st.integers(-4000, 4000).map(lambda j: [j]),
    )
    steps = [s for seg in draw(st.lists(segment, min_size=1, max_size=40)) for s in seg]
    start = draw(st.sampled_from([0.5, 1.0, 1.0001, 37.0, 1e4]))
    return start * np.exp(np.cumsum(np.r_[0, steps[: max_len - 1]]) * 1e-4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(close=price_paths())
def test_online_equals_batch_on_synthetic_walks_with_small_windows(close: np.ndarray) -> None:
    frame = synthetic_frame(close)

    online = stream(SMALL, as_bars(frame))

    assert_agree(online, compute(SMALL, frame).to_numpy(), SMALL.names)


def test_a_constant_price_gives_nan_zscores_and_zero_volatility_as_in_batch() -> None:
    close = np.r_[np.full(30, 50.0), 51.0, np.full(30, 51.0)]
    frame = synthetic_frame(close)

    online = stream(SMALL, as_bars(frame))

    assert_agree(online, compute(SMALL, frame).to_numpy(), SMALL.names)
    col = SMALL.names.index("volatility_6")
    assert (online[6:30, col] == 0.0).all()


# ---------------------------------------------------------------- each twin against its kernel

KernelCall = Callable[[np.ndarray], np.ndarray]
TWIN_CASES: list[tuple[Callable[[], Stream], KernelCall]] = [
    *[(lambda n=n: SMAStream(n), lambda x, n=n: kernels.sma(x, n)) for n in (1, 2, 3, 10, 50)],
    *[(lambda n=n: EMAStream(n), lambda x, n=n: kernels.ema(x, n)) for n in (1, 2, 10, 50)],
    *[
        (lambda n=n: DistSMAStream(n), lambda x, n=n: kernels.dist_ma(x, n, "sma"))
        for n in (1, 2, 10)
    ],
    *[
        (lambda n=n: DistEMAStream(n), lambda x, n=n: kernels.dist_ma(x, n, "ema"))
        for n in (1, 2, 10)
    ],
    *[(lambda n=n: RSIStream(n), lambda x, n=n: kernels.rsi(x, n)) for n in (1, 2, 14)],
    *[(lambda k=k: LogReturnStream(k), lambda x, k=k: kernels.log_return(x, k)) for k in (1, 2, 5)],
    *[(lambda n=n: StdStream(n), lambda x, n=n: kernels.rolling_std(x, n)) for n in (2, 3, 20)],
    *[
        (lambda n=n: VolatilityStream(n), lambda x, n=n: kernels.realised_vol(x, n))
        for n in (2, 3, 20)
    ],
    *[
        (lambda w=w: AR1ZScoreStream(w), lambda x, w=w: kernels.ar1_zscore(np.log(x), w))
        for w in (3, 4, 60)
    ],
    (lambda: AR1ZScoreStream(10, log=False), lambda x: kernels.ar1_zscore(x, 10)),
    *[(lambda n=n: ZScoreStream(n), lambda x, n=n: kernels.zscore(x, n)) for n in (2, 3, 20)],
    *[
        (lambda n=n: BollingerBStream(n, 1.5), lambda x, n=n: kernels.bollinger_b(x, n, 1.5))
        for n in (2, 20)
    ],
    *[
        (lambda k=k: SimpleReturnStream(k), lambda x, k=k: kernels.simple_return(x, k))
        for k in (1, 5)
    ],
    *[
        (lambda m=m: MASpreadStream(3, 10, m), lambda x, m=m: kernels.ma_spread(x, 3, 10, m))
        for m in ("sma", "ema")
    ],
    *[
        (lambda m=m: MACrossStream(1, 20, m), lambda x, m=m: kernels.ma_cross(x, 1, 20, m))
        for m in ("sma", "ema")
    ],
]
TWIN_IDS = [repr(make()) for make, _ in TWIN_CASES]


def run_twin(twin: Stream, x: np.ndarray) -> np.ndarray:
    return np.array([twin.update(v) for v in x.tolist()])


@pytest.mark.parametrize(("make", "kernel"), TWIN_CASES, ids=TWIN_IDS)
def test_each_twin_equals_its_kernel_and_declares_its_warmup(
    make: Callable[[], Stream], kernel: KernelCall, aapl_bars: list[Bar]
) -> None:
    close = np.array([b.close for b in aapl_bars[:800]])
    flat = np.r_[close[:100], np.full(80, close[99]), close[100:200]]
    for x in (close, flat):
        twin = make()
        warm = []
        got = []
        for v in x.tolist():
            got.append(twin.update(v))
            warm.append(twin.initialized)

        expected = kernel(x)
        name = "ar1_zscore" if isinstance(twin, AR1ZScoreStream) else twin.kind
        assert_agree(np.array(got)[:, None], expected[:, None], [name])
        assert warm == [i >= twin.warmup for i in range(x.size)]
        assert np.isnan(got[: twin.warmup]).all()


def test_every_feature_kind_of_the_spec_has_a_streaming_twin() -> None:
    assert set(TWINS) == set(FEATURE_TYPES)


def test_twins_of_spec_features_declare_the_specs_warmup() -> None:
    for feature in (*SPEC.features, *SMALL.features):
        assert twin_for(feature).warmup == feature.warmup, feature.name


def test_twins_reject_the_parameters_the_kernels_reject() -> None:
    for bad in (
        lambda: SMAStream(0),
        lambda: StdStream(1),
        lambda: AR1ZScoreStream(2),
        lambda: ZScoreStream(1),
        lambda: MACrossStream(5, 5),
    ):
        with pytest.raises(ValueError, match="must be an integer >="):
            bad()


# ---------------------------------------------------------------- long-run stability


def test_two_hundred_thousand_bars_near_1e4_end_equal_to_batch() -> None:
    rng = np.random.default_rng(7)
    close = 1e4 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, 200_000)))
    bars = [Bar("SYN", 60_000 * i, c, c, c, c, 1.0) for i, c in enumerate(close.tolist())]
    engine = OnlineFeatures(SPEC)

    engine.warm_up(bars[:-2000])
    tail = np.array([engine.update(bar) for bar in bars[-2000:]])

    cols = dict.fromkeys(("open", "high", "low", "close"), close) | {"volume": np.ones(close.size)}
    assert_agree(tail, compute_arrays(SPEC, cols)[-2000:], SPEC.names)


# ---------------------------------------------------------------- snapshot and restore


@pytest.mark.parametrize("cut", [0, 1, 14, 59, 60, 61, 1000])
def test_snapshot_json_round_trip_continues_bit_identically(aapl_bars: list[Bar], cut: int) -> None:
    bars = aapl_bars[:1300]
    whole = stream(SPEC, bars)
    engine = OnlineFeatures(SPEC)
    for bar in bars[:cut]:
        engine.update(bar)

    text = json.dumps(engine.snapshot(), allow_nan=False)
    restored = OnlineFeatures.restore(SPEC, json.loads(text))
    rest = [restored.update(bar) for bar in bars[cut:]]

    np.testing.assert_array_equal(np.array(rest).reshape(-1, len(SPEC.names)), whole[cut:])
    assert restored.bars_seen == len(bars)


def test_snapshot_names_the_spec_hash_and_the_last_bar(aapl_bars: list[Bar]) -> None:
    engine = OnlineFeatures(SPEC)
    engine.warm_up(aapl_bars[:100])

    snap = engine.snapshot()

    assert snap["spec_hash"] == SPEC.hash
    assert snap["last_open_ms"] == aapl_bars[99].open_ms
    assert snap["symbol"] == "AAPL"
    assert snap["features"] == SPEC.names


def test_a_snapshot_of_another_spec_is_refused_naming_both_hashes(aapl_bars: list[Bar]) -> None:
    engine = OnlineFeatures(SMALL)
    engine.warm_up(aapl_bars[:10])

    with pytest.raises(ValueError, match=f"{SMALL.hash}.*{SPEC.hash}"):
        OnlineFeatures.restore(SPEC, engine.snapshot())


def test_each_twin_state_round_trips_through_json_mid_stream(aapl_bars: list[Bar]) -> None:
    x = [b.close for b in aapl_bars[:300]]
    for make, _ in TWIN_CASES:
        for cut in (0, 2, 61, 150):
            twin, whole = make(), make()
            expected = [whole.update(v) for v in x]
            head = [twin.update(v) for v in x[:cut]]

            state = json.loads(json.dumps(twin.state(), allow_nan=False))
            back = type(twin).from_state(state)
            again = make()
            again.restore(state)

            tail = [back.update(v) for v in x[cut:]]
            other = [again.update(v) for v in x[cut:]]
            np.testing.assert_array_equal(head + tail, expected, err_msg=f"{twin!r} at {cut}")
            np.testing.assert_array_equal(other, tail, err_msg=f"{twin!r} at {cut}")


def test_a_twin_refuses_the_state_of_another_kind_or_window() -> None:
    with pytest.raises(ValueError, match="cannot restore"):
        SMAStream(10).restore(SMAStream(11).state())
    with pytest.raises(ValueError, match="cannot restore"):
        DistSMAStream(10).restore(SMAStream(10).state())


def test_warm_up_then_update_equals_feeding_every_bar(aapl_bars: list[Bar]) -> None:
    bars = aapl_bars[:400]
    engine = OnlineFeatures(SPEC)

    engine.warm_up(bars[:250])
    rest = np.array([engine.update(bar) for bar in bars[250:]])

    np.testing.assert_array_equal(rest, stream(SPEC, bars)[250:])


# ---------------------------------------------------------------- refusing bad bars


def test_a_duplicate_or_older_bar_is_refused_and_changes_nothing(aapl_bars: list[Bar]) -> None:
    bars = aapl_bars[:120]
    engine = OnlineFeatures(SPEC)
    engine.warm_up(bars[:100])
    before = engine.snapshot()

    with pytest.raises(ValueError, match="repeats the last accepted bar"):
        engine.update(bars[99])
    with pytest.raises(ValueError, match="is older than the last accepted bar"):
        engine.update(bars[50])
    assert engine.snapshot() == before
    with pytest.raises(ValueError, match="repeats"):
        engine.warm_up([bars[100], bars[100]])

    assert engine.bars_seen == 101  # the first bars[100] was taken, its repeat was not
    np.testing.assert_array_equal(
        np.array([engine.update(bar) for bar in bars[101:]]), stream(SPEC, bars)[101:]
    )


def test_bars_of_another_symbol_or_with_bad_prices_are_refused(aapl_bars: list[Bar]) -> None:
    engine = OnlineFeatures(SPEC)
    engine.warm_up(aapl_bars[:10])
    before = engine.snapshot()
    nxt = aapl_bars[10]
    other = Bar("MSFT", nxt.open_ms, 1.0, 1.0, 1.0, 1.0, 1.0)
    zero = Bar("AAPL", nxt.open_ms, 1.0, 1.0, 1.0, 0.0, 1.0)
    nan = Bar("AAPL", nxt.open_ms, 1.0, 1.0, 1.0, float("nan"), 1.0)

    with pytest.raises(ValueError, match="keep one OnlineFeatures per symbol"):
        engine.update(other)
    for bad in (zero, nan):
        with pytest.raises(ValueError, match=r"close=.* must be positive and finite"):
            engine.update(bad)

    assert engine.snapshot() == before


# ---------------------------------------------------------------- several symbols


def test_a_feature_set_routes_interleaved_symbols_to_their_own_engines(
    sample: dict[str, pd.DataFrame],
) -> None:
    aapl = as_bars(sample["AAPL"])[:200]
    msft = as_bars(sample["MSFT"])[:200]
    features = OnlineFeatureSet(SPEC)
    got: dict[str, list[np.ndarray]] = {"AAPL": [], "MSFT": []}

    for a, m in zip(aapl[:100], msft[:100], strict=True):
        got["AAPL"].append(features.update(a))
        got["MSFT"].append(features.update(m))
    snap = json.loads(json.dumps(features.snapshot(), allow_nan=False))
    features = OnlineFeatureSet.restore(SPEC, snap)
    for a, m in zip(aapl[100:], msft[100:], strict=True):
        got["AAPL"].append(features.update(a))
        got["MSFT"].append(features.update(m))

    np.testing.assert_array_equal(np.array(got["AAPL"]), stream(SPEC, aapl))
    np.testing.assert_array_equal(np.array(got["MSFT"]), stream(SPEC, msft))
    assert features["MSFT"].symbol == "MSFT"
    with pytest.raises(ValueError, match=SPEC.hash):
        OnlineFeatureSet.restore(SMALL, snap)


# ---------------------------------------------------------------- the live side's import


def test_importing_the_online_engine_does_not_import_pandas() -> None:
    code = "import mlalgo.features.online, sys; assert 'pandas' not in sys.modules"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
