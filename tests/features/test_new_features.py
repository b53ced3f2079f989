"""The feature kinds zscore, return, ma_spread, ma_cross, bollinger_b and atr, end to end.

Real sample first: each kernel against a direct NumPy/loop reference and against TA-Lib where
TA-Lib has the quantity, then the online twins against the batch engine at every bar of every
sample symbol (invariant 1 of DESIGN.md). Random walks then force flat stretches, jumps, zero
volumes and tiny windows; snapshots must continue bit for bit; warm-up, causality and the spec's
names, hash and validation are checked for every new kind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import ValidationError

from mlalgo.config import ConfigError, load_pipeline
from mlalgo.data.bar import Bar
from mlalgo.features import kernels as K
from mlalgo.features.batch import compute, compute_arrays
from mlalgo.features.online import OnlineFeatures, twin_for
from mlalgo.features.online.crossover import CROSS_TIE
from mlalgo.features.spec import (
    ATR,
    FEATURE_TYPES,
    RSI,
    AR1ZScore,
    BollingerB,
    DistEMA,
    DistSMA,
    FeatureSpec,
    LogReturn,
    MACross,
    MASpread,
    SimpleReturn,
    Volatility,
    ZScore,
)

talib = pytest.importorskip("talib")

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "IBM", "MSFT", "SPX")
COLUMNS = ("open", "high", "low", "close", "volume")
NEW_TYPES = (ZScore, SimpleReturn, MASpread, MACross, BollingerB, ATR)

NEW = FeatureSpec(
    features=(
        ZScore(n=20),
        ZScore(n=20, input="volume"),
        SimpleReturn(k=1),
        SimpleReturn(k=5),
        MASpread(fast=10, slow=50),
        MASpread(fast=12, slow=26, kind="ema"),
        MACross(fast=10, slow=50),
        MACross(fast=12, slow=26, kind="ema"),
        BollingerB(n=20),
        BollingerB(n=10, k=1.5, input="open"),
        ATR(n=14),
        ATR(n=5, normalize=False),
    )
)
# Kinds whose batch kernel repeats its twin's operations, so the engines agree bit for bit.
BIT_EXACT = (SimpleReturn, MASpread, MACross, ATR)
# Every kind, old and new, with tiny windows: for snapshots and the hypothesis walks.
SMALL = FeatureSpec(
    features=(
        ZScore(n=2),
        ZScore(n=5),
        ZScore(n=3, input="volume"),
        SimpleReturn(k=1),
        SimpleReturn(k=3, input="open"),
        SimpleReturn(k=1, input="volume"),  # zero volumes: x / 0 - 1 as numpy has it
        MASpread(fast=1, slow=2),
        MASpread(fast=2, slow=5, kind="ema"),
        MACross(fast=1, slow=2),
        MACross(fast=2, slow=5),
        MACross(fast=1, slow=3, kind="ema"),
        MACross(fast=3, slow=4, kind="ema"),
        BollingerB(n=2),
        BollingerB(n=4, k=1.5),
        ATR(n=1),
        ATR(n=3),
        ATR(n=5, normalize=False),
        RSI(n=3),
        DistSMA(n=4),
        DistEMA(n=3),
        Volatility(n=3),
        LogReturn(k=2),
        AR1ZScore(window=5),
    )
)
RTOL, ATOL = 1e-9, 1e-12
Sample = dict[str, dict[str, np.ndarray]]  # symbol -> column -> values


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy(dtype=np.float64) for c in COLUMNS}


def bars_of(symbol: str, cols: dict[str, np.ndarray]) -> list[Bar]:
    rows = zip(*(cols[c].tolist() for c in COLUMNS), strict=True)
    return [Bar(symbol, 60_000 * i, *row) for i, row in enumerate(rows)]


def stream(spec: FeatureSpec, bars: Sequence[Bar]) -> np.ndarray:
    engine = OnlineFeatures(spec)
    return np.array([engine.update(bar) for bar in bars]).reshape(len(bars), len(spec.names))


def assert_close(ours: np.ndarray, ref: np.ndarray, what: str, atol: float = ATOL) -> None:
    """NaN exactly where ``ref`` is NaN, infinities equal, the rest within RTOL plus ``atol``."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NaN mask")
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(ours[~finite], ref[~finite], err_msg=f"{what}: non-finite")
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=RTOL, atol=atol, err_msg=what)


def assert_engines_agree(spec: FeatureSpec, online: np.ndarray, batch: np.ndarray) -> None:
    for j, feature in enumerate(spec.features):
        if isinstance(feature, BIT_EXACT):
            np.testing.assert_array_equal(online[:, j], batch[:, j], err_msg=feature.name)
        else:
            assert_close(online[:, j], batch[:, j], feature.name)


@pytest.fixture(scope="module")
def sample(sample_bars: pd.DataFrame) -> Sample:
    return {s: columns_of(sample_bars.loc[[s]]) for s in SYMBOLS}


# ---------------------------------------------------------------- references (plain numpy/loops)


def windows(x: np.ndarray, n: int) -> np.ndarray:
    return sliding_window_view(x, n)


def pad(values: np.ndarray, size: int) -> np.ndarray:
    return np.r_[np.full(size - values.size, np.nan), values]


def ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    return pad(windows(x, n).mean(axis=1), x.size)


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    a = 2.0 / (n + 1)
    e = float(np.mean(x[:n]))
    out[n - 1] = e
    for t in range(n, x.size):
        e = a * x[t] + (1 - a) * e
        out[t] = e
    return out


def ref_zscore(x: np.ndarray, n: int) -> np.ndarray:
    w = windows(x, n)
    mean, std = w.mean(axis=1), w.std(axis=1)
    flat = w.max(axis=1) == w.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pad(np.where(flat, np.nan, (w[:, -1] - mean) / std), x.size)


def ref_return(x: np.ndarray, k: int) -> np.ndarray:
    return np.array([np.nan if t < k else x[t] / x[t - k] - 1 for t in range(x.size)])


def ref_ma(x: np.ndarray, n: int, kind: str) -> np.ndarray:
    return ref_sma(x, n) if kind == "sma" else ref_ema(x, n)


def ref_bollinger_b(x: np.ndarray, n: int, k: float) -> np.ndarray:
    w = windows(x, n)
    mean, std = w.mean(axis=1), w.std(axis=1)
    lower = mean - k * std
    with np.errstate(invalid="ignore"):  # a flat window: 0 / 0
        return pad((w[:, -1] - lower) / (2 * k * std), x.size)


def ref_atr(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    out = np.full(c.size, np.nan)
    tr = [max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])) for t in range(1, c.size)]
    avg = sum(tr[:n]) / n
    out[n] = avg
    for t in range(n + 1, c.size):
        avg = (avg * (n - 1) + tr[t - 1]) / n
        out[t] = avg
    return out


# ---------------------------------------------------------------- 1. kernels vs references


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_zscore_and_bollinger_b_match_the_windowed_definition(sample: Sample, symbol: str) -> None:
    cols = sample[symbol]
    for n in (2, 5, 20, 60):
        for col in ("close", "volume"):
            x = cols[col]
            assert_close(K.zscore(x, n), ref_zscore(x, n), f"zscore {col} {n}")
        for k in (1.5, 2.0):
            got = K.bollinger_b(cols["close"], n, k)
            assert_close(got, ref_bollinger_b(cols["close"], n, k), f"%b {n} {k}")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_return_and_ma_pairs_match_loops(sample: Sample, symbol: str) -> None:
    x = sample[symbol]["close"]
    for k in (1, 5, 21):
        assert_close(K.simple_return(x, k), ref_return(x, k), f"return {k}")
    for kind in ("sma", "ema"):
        for fast, slow in ((1, 2), (10, 50), (12, 26), (50, 200)):
            f, s = ref_ma(x, fast, kind), ref_ma(x, slow, kind)
            assert_close(K.ma_spread(x, fast, slow, kind), f / s - 1, f"spread {kind}")
            d = f - s
            ref = np.where(np.abs(d) <= CROSS_TIE * np.abs(s), 0.0, np.sign(d))
            ref[np.isnan(s)] = np.nan
            np.testing.assert_array_equal(K.ma_cross(x, fast, slow, kind), ref, err_msg=kind)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_atr_matches_the_wilder_loop_raw_and_over_close(sample: Sample, symbol: str) -> None:
    cols = sample[symbol]
    h, lo, c = cols["high"], cols["low"], cols["close"]
    for n in (1, 5, 14):
        spec = FeatureSpec(features=(ATR(n=n), ATR(n=n, normalize=False)))
        got = compute_arrays(spec, cols)
        ref = ref_atr(h, lo, c, n)
        assert_close(got[:, 1], ref, f"atr {n}", atol=1e-12 * float(h.max()))
        assert_close(got[:, 0], ref / c, f"natr {n}")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_kernels_match_talib_where_it_has_the_quantity(sample: Sample, symbol: str) -> None:
    cols = sample[symbol]
    x, h, lo = cols["close"], cols["high"], cols["low"]
    for n in (5, 20, 50):
        for col in ("close", "volume"):
            v = cols[col]
            std = talib.STDDEV(v, n, 1.0)
            # TA-Lib's running sums of x^2 lose ~1e-10 of a quiet window's spread; ours are exact.
            expected = np.where(std == 0.0, np.nan, (v - talib.SMA(v, n)) / std)
            assert_close(K.zscore(v, n), expected, f"zscore {col} {n}", atol=1e-9)
        upper, _, lower = talib.BBANDS(x, n, 2.0, 2.0, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.where(upper == lower, np.nan, (x - lower) / (upper - lower))
        assert_close(K.bollinger_b(x, n), expected, f"%b {n}", atol=1e-9)
        natr = compute_arrays(FeatureSpec(features=(ATR(n=n),)), cols)[:, 0]
        assert_close(natr, talib.NATR(h, lo, x, n) / 100.0, f"natr {n}")
    for fast, slow in ((10, 50), (12, 26)):
        sma = talib.SMA(x, fast) / talib.SMA(x, slow) - 1
        ema = talib.EMA(x, fast) / talib.EMA(x, slow) - 1
        assert_close(K.ma_spread(x, fast, slow, "sma"), sma, "spread sma")
        assert_close(K.ma_spread(x, fast, slow, "ema"), ema, "spread ema")


def test_batch_columns_are_the_kernel_calls(sample: Sample) -> None:
    cols = sample["AAPL"]
    out = compute_arrays(NEW, cols)
    x = cols["close"]
    expected = {
        "zscore_20": K.zscore(x, 20),
        "zscore_20_volume": K.zscore(cols["volume"], 20),
        "return_5": K.simple_return(x, 5),
        "ma_spread_ema_12_26": K.ma_spread(x, 12, 26, "ema"),
        "ma_cross_sma_10_50": K.ma_cross(x, 10, 50, "sma"),
        "bollinger_b_10_1.5_open": K.bollinger_b(cols["open"], 10, 1.5),
        "atr_5_raw": K.atr(cols["high"], cols["low"], x, 5),
        "atr_14": K.atr(cols["high"], cols["low"], x, 14) / x,
    }
    for name, values in expected.items():
        np.testing.assert_array_equal(out[:, NEW.names.index(name)], values, err_msg=name)


# ---------------------------------------------------------------- 2. online == batch


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_online_equals_batch_at_every_bar_of_every_sample_symbol(
    sample: Sample, symbol: str
) -> None:
    cols = sample[symbol]
    engine = OnlineFeatures(NEW)
    rows, ready = [], []
    for bar in bars_of(symbol, cols):
        rows.append(engine.update(bar))
        ready.append(engine.ready)

    assert_engines_agree(NEW, np.array(rows), compute_arrays(NEW, cols))
    assert ready == [i >= NEW.warmup for i in range(len(rows))]


@st.composite
def walks(draw: st.DrawFn, max_len: int = 300) -> dict[str, np.ndarray]:
    """Bars of a positive random walk in whole basis points: flats, ordinary moves, big jumps.

    High and low stick out of the body by 0..30 bp (often 0), volumes repeat, jump and hit 0.
    """
    segment = st.one_of(
        st.integers(1, 30).map(lambda k: [0] * k),
        st.lists(st.integers(-150, 150), min_size=1, max_size=30),
        st.tuples(st.sampled_from([1, -3, 7]), st.integers(2, 20)).map(lambda s: [s[0]] * s[1]),
        st.integers(-4000, 4000).map(lambda j: [j]),
    )
    steps = [s for seg in draw(st.lists(segment, min_size=3, max_size=40)) for s in seg]
    steps = steps[: max_len - 1]
    size = len(steps) + 1
    start = draw(st.sampled_from([0.5, 1.0, 37.0, 1e4]))
    close = start * np.exp(np.cumsum(np.r_[0, steps]) * 1e-4)
    open_ = np.r_[close[0], close[:-1]]
    wick = st.lists(st.sampled_from([0, 0, 1, 5, 30]), min_size=size, max_size=size)
    high = np.maximum(open_, close) * np.exp(np.array(draw(wick)) * 1e-4)
    low = np.minimum(open_, close) * np.exp(-np.array(draw(wick)) * 1e-4)
    levels = st.lists(st.sampled_from([0.0, 0.0, 100.0, 1234.0, 5e6]), min_size=1, max_size=8)
    volume = np.resize(np.repeat(draw(levels), draw(st.integers(1, 10))), size)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cols=walks())
def test_online_equals_batch_on_random_walks_with_small_windows(
    cols: dict[str, np.ndarray],
) -> None:
    online = stream(SMALL, bars_of("SYN", cols))
    batch = compute_arrays(SMALL, cols)

    new = [j for j, f in enumerate(SMALL.features) if isinstance(f, NEW_TYPES)]
    spec = FeatureSpec(features=tuple(SMALL.features[j] for j in new))
    assert_engines_agree(spec, online[:, new], batch[:, new])


def test_flat_markets_give_nan_zscores_and_a_zero_cross_in_both_engines() -> None:
    close = np.r_[np.full(30, 50.0), np.full(150, 50.37)]
    cols = dict.fromkeys(("open", "high", "low", "close"), close) | {"volume": np.ones(180)}
    spec = FeatureSpec(
        features=(
            ZScore(n=5),
            ZScore(n=5, input="volume"),
            BollingerB(n=5),
            MACross(fast=3, slow=7),
            MACross(fast=3, slow=7, kind="ema"),
        )
    )

    batch = compute_arrays(spec, cols)
    online = stream(spec, bars_of("FLAT", cols))

    assert_engines_agree(spec, online, batch)
    assert np.isnan(batch[np.r_[4:30, 35:180], :3]).all()
    assert (batch[6:30, 3:] == 0.0).all()
    assert (batch[30:36, 3:] == 1.0).all()  # the step up lifts the fast average above the slow
    assert (batch[36:, 3] == 0.0).all()  # both SMA windows hold only the new price
    assert (batch[-20:, 4] == 0.0).all()  # the EMAs only converge: equal to rounding, a tie


# ---------------------------------------------------------------- 3. snapshots


def test_small_spec_holds_every_feature_kind() -> None:
    assert {type(f) for f in SMALL.features} == set(FEATURE_TYPES)
    assert {type(f) for f in NEW.features} == set(NEW_TYPES)


@pytest.mark.parametrize("cut", [0, 1, 2, 4, 5, 6, 120])
def test_snapshot_of_every_kind_round_trips_json_and_continues_bit_identically(
    sample: Sample, cut: int
) -> None:
    cols = {c: v[:300] for c, v in sample["MSFT"].items()}
    bars = bars_of("MSFT", cols)
    whole = stream(SMALL, bars)
    engine = OnlineFeatures(SMALL)
    engine.warm_up(bars[:cut])

    text = json.dumps(engine.snapshot(), allow_nan=False)
    restored = OnlineFeatures.restore(SMALL, json.loads(text))
    rest = np.array([restored.update(bar) for bar in bars[cut:]])

    np.testing.assert_array_equal(rest, whole[cut:])


def test_each_new_twin_state_restores_into_a_fresh_twin(sample: Sample) -> None:
    cols = sample["IBM"]
    for feature in NEW.features:
        values = [cols[c][:80].tolist() for c in feature.columns]
        xs = list(zip(*values, strict=True)) if len(values) > 1 else values[0]
        twin, whole = twin_for(feature), twin_for(feature)
        expected = [whole.update(x) for x in xs]
        head = [twin.update(x) for x in xs[:40]]

        back = type(twin).from_state(json.loads(json.dumps(twin.state(), allow_nan=False)))

        got = head + [back.update(x) for x in xs[40:]]
        np.testing.assert_array_equal(got, expected, err_msg=feature.name)
        with pytest.raises(ValueError, match="cannot restore"):
            twin_for(ZScore(n=7)).restore(twin.state())


# ---------------------------------------------------------------- 4. warm-up and causality


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_first_value_is_at_the_specs_warmup(sample: Sample, symbol: str) -> None:
    out = compute_arrays(NEW, sample[symbol])
    for j, feature in enumerate(NEW.features):
        valid = np.flatnonzero(~np.isnan(out[:, j]))

        assert valid[0] == feature.warmup, feature.name
        assert valid.size == len(out) - feature.warmup, feature.name
        assert twin_for(feature).warmup == feature.warmup, feature.name


def test_warmups_and_columns_are_declared() -> None:
    assert [f.warmup for f in NEW.features] == [19, 19, 1, 5, 49, 25, 49, 25, 19, 9, 14, 5]
    assert NEW.warmup == 49
    assert ATR(n=3).columns == ("high", "low", "close")
    assert ZScore(n=3, input="volume").columns == ("volume",)
    assert MACross(fast=1, slow=2, input="open").columns == ("open",)


def test_a_value_depends_only_on_bars_up_to_it(sample: Sample) -> None:
    cols = sample["SPX"]
    full = compute_arrays(NEW, cols)
    for t in (0, 1, 4, 5, 9, 13, 14, 19, 25, 48, 49, 50, 777, len(full) - 1):
        head = compute_arrays(NEW, {c: v[: t + 1] for c, v in cols.items()})

        np.testing.assert_array_equal(head[-1], full[t], err_msg=f"t={t}")


def test_inputs_are_not_mutated(sample_bars: pd.DataFrame, sample: Sample) -> None:
    frame = sample_bars.loc[["AAPL", "IBM"]].copy()
    before = frame.copy()
    cols = {c: v.copy() for c, v in sample["AAPL"].items()}
    for v in cols.values():
        v.setflags(write=False)

    out = compute_arrays(NEW, cols)
    compute(NEW, frame)

    pd.testing.assert_frame_equal(frame, before, check_exact=True)
    for c, v in cols.items():
        np.testing.assert_array_equal(v, sample["AAPL"][c])
    np.testing.assert_array_equal(out, compute_arrays(NEW, sample["AAPL"]))


# ---------------------------------------------------------------- 5. the spec


def test_names_are_stable_readable_and_unique() -> None:
    assert NEW.names == [
        "zscore_20",
        "zscore_20_volume",
        "return_1",
        "return_5",
        "ma_spread_sma_10_50",
        "ma_spread_ema_12_26",
        "ma_cross_sma_10_50",
        "ma_cross_ema_12_26",
        "bollinger_b_20_2.0",
        "bollinger_b_10_1.5_open",
        "atr_14",
        "atr_5_raw",
    ]
    assert len(set(SMALL.names)) == len(SMALL.names)
    with pytest.raises(ValidationError, match="duplicate features: ma_cross_sma_2_5"):
        FeatureSpec(features=(MACross(fast=2, slow=5), RSI(), MACross(fast=2, slow=5)))


def test_json_round_trip_gives_an_equal_spec_of_the_same_kinds() -> None:
    text = NEW.to_json()

    back = FeatureSpec.from_json(text)

    assert back == NEW
    assert back.hash == NEW.hash
    assert [type(f) for f in back.features] == [type(f) for f in NEW.features]
    assert '"feature":"return"' in text


def test_hash_and_name_change_with_any_parameter() -> None:
    variants = {
        ZScore(n=20): [ZScore(n=21), ZScore(n=20, input="volume")],
        SimpleReturn(k=5): [SimpleReturn(k=6), SimpleReturn(k=5, input="open")],
        BollingerB(n=20): [BollingerB(n=21), BollingerB(n=20, k=2.5), BollingerB(input="open")],
        ATR(n=14): [ATR(n=15), ATR(n=14, normalize=False)],
    }
    for pair in (MASpread, MACross):
        base = pair(fast=10, slow=50)
        variants[base] = [
            pair(fast=11, slow=50),
            pair(fast=10, slow=51),
            pair(fast=10, slow=50, kind="ema"),
            pair(fast=10, slow=50, input="high"),
        ]
    assert MASpread(fast=10, slow=50).name != MACross(fast=10, slow=50).name
    for base, others in variants.items():
        specs = [FeatureSpec(features=(f,)) for f in (base, *others)]

        assert len({s.hash for s in specs}) == len(specs), base.name
        assert len({s.names[0] for s in specs}) == len(specs), base.name
        assert FeatureSpec(features=(base,)).hash == FeatureSpec(features=(base,)).hash


@pytest.mark.parametrize("pair", [MASpread, MACross])
@pytest.mark.parametrize("fast", [50, 51])
def test_fast_not_below_slow_is_refused_naming_the_key(pair: type, fast: int) -> None:
    with pytest.raises(ValidationError) as err:
        pair(fast=fast, slow=50)

    assert err.value.errors()[0]["loc"] == ("slow",)
    assert f"slow must be greater than fast={fast}" in str(err.value)


def test_config_errors_of_new_kinds_name_the_file_and_key(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "pipelines" / "train.yaml").read_text())
    i = len(raw["stages"]["features"])
    cases = [
        ({"feature": "ma_spread", "fast": 50, "slow": 10}, "slow: .*must be greater than fast=50"),
        ({"feature": "atr", "input": "open"}, "input: .*atr reads high, low and close"),
        ({"feature": "bollinger_b", "k": 0}, "k: input should be greater than 0"),
        ({"feature": "zscore", "n": 1}, "n: input should be greater than or equal to 2"),
    ]
    for feature, message in cases:
        raw["stages"]["features"].append(feature)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        raw["stages"]["features"].pop()

        with pytest.raises(ConfigError, match=rf"bad\.yaml: stages\.features\.{i}\.{message}"):
            load_pipeline(path)


def test_the_cross_tie_is_one_number_in_both_engines() -> None:
    assert CROSS_TIE == K.CROSS_TIE
