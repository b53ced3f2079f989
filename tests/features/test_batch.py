"""The FeatureSpec (features as data) and the batch engine that computes it per symbol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlalgo.config import load_pipeline
from mlalgo.features import kernels
from mlalgo.features.batch import compute
from mlalgo.features.spec import (
    RSI,
    AR1ZScore,
    DistEMA,
    DistSMA,
    FeatureSpec,
    LogReturn,
    Volatility,
    _Feature,
)

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
STOCKS = ["AAPL", "IBM", "MSFT"]

SPEC = FeatureSpec(
    features=(
        RSI(n=14),
        DistSMA(n=10),
        DistEMA(n=50),
        Volatility(n=20),
        LogReturn(k=5),
        AR1ZScore(window=60),
        AR1ZScore(window=30, log=False),
        RSI(n=7, input="open"),
    )
)


def direct_kernel(feature: _Feature, x: np.ndarray) -> np.ndarray:
    """The kernel call a feature stands for, spelled out independently of the batch engine."""
    if isinstance(feature, RSI):
        return kernels.rsi(x, feature.n)
    if isinstance(feature, DistSMA):
        return kernels.dist_ma(x, feature.n, "sma")
    if isinstance(feature, DistEMA):
        return kernels.dist_ma(x, feature.n, "ema")
    if isinstance(feature, Volatility):
        return kernels.realised_vol(x, feature.n)
    if isinstance(feature, LogReturn):
        return kernels.log_return(x, feature.k)
    if isinstance(feature, AR1ZScore):
        return kernels.ar1_zscore(np.log(x) if feature.log else x, feature.window)
    raise AssertionError(f"no kernel for {feature!r}")


def leading_nans(x: np.ndarray) -> int:
    finite = np.flatnonzero(~np.isnan(x))
    return int(finite[0]) if len(finite) else len(x)


@pytest.fixture(scope="module")
def stocks(sample_bars: pd.DataFrame) -> pd.DataFrame:
    return sample_bars.loc[STOCKS].copy()


@pytest.fixture(scope="module")
def features(stocks: pd.DataFrame) -> pd.DataFrame:
    return compute(SPEC, stocks)


# ---------------------------------------------------------------- the spec


def test_feature_names_are_stable_and_readable() -> None:
    assert SPEC.names == [
        "rsi_14",
        "dist_sma_10",
        "dist_ema_50",
        "volatility_20",
        "log_return_5",
        "ar1_zscore_60",
        "ar1_zscore_30_raw",
        "rsi_7_open",
    ]


def test_the_default_pipeline_spec_names_its_eight_features() -> None:
    spec = load_pipeline(TRAIN_YAML).feature_spec

    assert spec.names == [
        "rsi_14",
        "dist_sma_10",
        "dist_sma_50",
        "dist_ema_10",
        "dist_ema_50",
        "volatility_20",
        "log_return_5",
        "ar1_zscore_60",
    ]
    assert spec.warmup == 60


def test_warmup_is_the_index_of_the_first_value_and_the_spec_takes_the_longest() -> None:
    assert [f.warmup for f in SPEC.features] == [14, 9, 49, 20, 5, 60, 30, 7]
    assert SPEC.warmup == 60
    assert FeatureSpec(features=(LogReturn(k=3),)).warmup == 3


def test_spec_hash_is_stable_and_changes_with_any_parameter() -> None:
    same = FeatureSpec(features=tuple(SPEC.features))
    changed = FeatureSpec(features=(RSI(n=15), *SPEC.features[1:]))
    other_input = FeatureSpec(features=(RSI(n=14, input="high"), *SPEC.features[1:]))
    reordered = FeatureSpec(features=(*SPEC.features[1:], SPEC.features[0]))

    assert len(SPEC.hash) == 64
    assert same.hash == SPEC.hash
    assert len({SPEC.hash, changed.hash, other_input.hash, reordered.hash}) == 4


def test_spec_json_round_trip_gives_an_equal_spec_and_hash() -> None:
    text = SPEC.to_json()

    back = FeatureSpec.from_json(text)

    assert back == SPEC
    assert back.hash == SPEC.hash
    assert back.to_json() == text
    assert [type(f) for f in back.features] == [type(f) for f in SPEC.features]


def test_duplicate_features_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate features: dist_sma_10"):
        FeatureSpec(features=(DistSMA(n=10), RSI(), DistSMA(n=10)))


def test_unknown_feature_parameters_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RSI(n=14, window=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Volatility(n=1)
    with pytest.raises(ValidationError):
        AR1ZScore(window=2)
    with pytest.raises(ValidationError):
        FeatureSpec.from_json('{"features": [{"feature": "macd", "n": 3}]}')


# ---------------------------------------------------------------- the batch engine


def test_compute_keeps_the_bars_index_and_names_columns_after_the_spec(
    stocks: pd.DataFrame, features: pd.DataFrame
) -> None:
    assert features.index.equals(stocks.index)
    assert list(features.columns) == SPEC.names
    assert all(dtype == np.float64 for dtype in features.dtypes)


def test_compute_on_all_symbols_equals_compute_on_each_symbol_alone(
    stocks: pd.DataFrame, features: pd.DataFrame
) -> None:
    for symbol in STOCKS:
        alone = compute(SPEC, stocks.loc[[symbol]])

        pd.testing.assert_frame_equal(features.loc[[symbol]], alone, check_exact=True)


def test_each_column_is_the_direct_kernel_call_on_that_symbols_series(
    stocks: pd.DataFrame, features: pd.DataFrame
) -> None:
    for symbol in STOCKS:
        bars = stocks.xs(symbol, level="symbol")
        got = features.xs(symbol, level="symbol")
        for feature in SPEC.features:
            expected = direct_kernel(feature, bars[feature.input].to_numpy())

            np.testing.assert_array_equal(got[feature.name].to_numpy(), expected)


def test_leading_nans_per_column_and_symbol_equal_the_features_warmup(
    features: pd.DataFrame,
) -> None:
    for symbol in STOCKS:
        got = features.xs(symbol, level="symbol")
        for feature in SPEC.features:
            column = got[feature.name].to_numpy()

            assert leading_nans(column) == feature.warmup, (symbol, feature.name)
            assert not np.isnan(column[feature.warmup :]).any(), (symbol, feature.name)


def test_compute_does_not_mutate_the_bars(stocks: pd.DataFrame) -> None:
    before = stocks.copy()

    compute(SPEC, stocks)

    pd.testing.assert_frame_equal(stocks, before, check_exact=True)


def test_a_feature_on_another_input_reads_that_column() -> None:
    days = pd.date_range("2021-01-04", periods=6, freq="B", tz="UTC")
    index = pd.MultiIndex.from_product([["X"], days], names=["symbol", "time"])
    bars = pd.DataFrame(
        {
            "open": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            "high": 40.0,
            "low": 0.5,
            "close": 10.0,
            "volume": [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0],
        },
        index=index,
    )
    spec = FeatureSpec(features=(LogReturn(k=1, input="open"), LogReturn(k=2, input="volume")))

    out = compute(spec, bars)

    assert list(out.columns) == ["log_return_1_open", "log_return_2_volume"]
    np.testing.assert_allclose(out["log_return_1_open"].iloc[1:], np.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(out["log_return_2_volume"].iloc[2:], np.log(100.0), rtol=1e-15)
