"""Tests for mlalgo.features.kernels against independent references: plain NumPy/Python, and
per-window two-pass numba loops where a million values must be checked."""

from __future__ import annotations

import csv
import doctest
import importlib
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from mlalgo.features import kernels as K
from mlalgo.features.kernels.dispersion import _std_long_into, _std_short_into

DATA = Path(__file__).resolve().parents[2] / "data" / "sample" / "stocks_daily.csv"


@cache
def _aapl_adj_close() -> np.ndarray:
    if not DATA.exists():
        pytest.skip(f"bundled data not found: {DATA}")
    with DATA.open(newline="") as fh:
        rows = [
            (r["Date"], float(r["Adj Close"])) for r in csv.DictReader(fh) if r["Ticker"] == "AAPL"
        ]
    rows.sort()
    out = np.array([v for _, v in rows], dtype=np.float64)
    out.setflags(write=False)
    return out


def _gbm(n: int, seed: int, start: float = 1e3, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def _wide_prices() -> np.ndarray:
    """10k prices spanning ~1e2..1e4 with daily-like noise."""
    rng = np.random.default_rng(7)
    trend = np.linspace(np.log(1e2), np.log(1e4), 10_000)
    return np.exp(trend + np.cumsum(rng.normal(0.0, 0.005, 10_000)) * 0.1)


SERIES: dict[str, Callable[[], np.ndarray]] = {
    "aapl": _aapl_adj_close,
    "gbm": lambda: _gbm(2_000, seed=1),
    "log_gbm": lambda: np.log(_gbm(1_500, seed=2, start=50.0)),
    "raw_price_1e3": lambda: _gbm(1_500, seed=3, start=1e3, vol=0.002),
}


# ---------------------------------------------------------------- references


def _ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    out[n - 1 :] = np.convolve(x, np.ones(n) / n, mode="valid")
    return out


def _ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    a = 2.0 / (n + 1)
    e = sum(x[:n]) / n
    out[n - 1] = e
    for t in range(n, x.size):
        e = a * x[t] + (1 - a) * e
        out[t] = e
    return out


def _ref_std(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    out[n - 1 :] = sliding_window_view(x, n).std(axis=1, ddof=0)
    return out


def _ref_rsi(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    d = np.diff(x)
    up, down = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    g, lo = up[:n].mean(), down[:n].mean()
    for t in range(n, x.size):
        if t > n:
            g = (g * (n - 1) + up[t - 1]) / n
            lo = (lo * (n - 1) + down[t - 1]) / n
        out[t] = 100.0 if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)
    return out


def _ref_log_return(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    for t in range(k, x.size):
        out[t] = math.log(x[t] / x[t - k])
    return out


def _ref_realised_vol(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    out[n:] = sliding_window_view(np.diff(np.log(x)), n).std(axis=1)
    return out


def _ref_ar1(x: np.ndarray, w: int) -> dict[str, np.ndarray]:
    ref = {k: np.full(x.size, np.nan) for k in ("alpha", "beta", "resid", "zscore", "half_life")}
    for t in range(w, x.size):
        xs, ys = x[t - w : t], x[t - w + 1 : t + 1]
        b, a = np.polyfit(xs, ys, 1)
        res = ys - (a + b * xs)
        s = math.sqrt(float(res @ res) / (w - 2))
        ref["alpha"][t], ref["beta"][t] = a, b
        ref["resid"][t] = x[t] - (a + b * x[t - 1])
        ref["zscore"][t] = ref["resid"][t] / s
        ref["half_life"][t] = -math.log(2) / math.log(b) if 0 < b < 1 else np.nan
    return ref


# ---------------------------------------------------------------- 1. vs references


@pytest.mark.parametrize("name", ["aapl", "gbm"])
@pytest.mark.parametrize("n", [1, 5, 20])
def test_moving_averages_match_reference(name: str, n: int) -> None:
    x = SERIES[name]()
    np.testing.assert_allclose(K.sma(x, n), _ref_sma(x, n), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(K.ema(x, n), _ref_ema(x, n), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(K.dist_ma(x, n), x / _ref_sma(x, n) - 1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        K.dist_ma(x, n, kind="ema"), x / _ref_ema(x, n) - 1, rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("name", ["aapl", "gbm"])
@pytest.mark.parametrize("n", [2, 14, 60])
def test_dispersion_and_returns_match_reference(name: str, n: int) -> None:
    x = SERIES[name]()
    np.testing.assert_allclose(K.rolling_std(x, n), _ref_std(x, n), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(
        K.realised_vol(x, n), _ref_realised_vol(x, n), rtol=1e-9, err_msg=name
    )
    np.testing.assert_allclose(K.rsi(x, n), _ref_rsi(x, n), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(K.log_return(x, n), _ref_log_return(x, n), rtol=1e-9)


def test_rolling_std_is_stable_on_wide_and_offset_prices() -> None:
    wide = _wide_prices()
    offset = 1e4 + np.random.default_rng(3).normal(0.0, 1e-3, 10_000)  # defeats sum-of-squares
    for x in (wide, offset):
        for n in (20, 250):
            np.testing.assert_allclose(K.rolling_std(x, n), _ref_std(x, n), rtol=1e-9)


@pytest.mark.parametrize("name, w", [("aapl", 40), ("log_gbm", 25), ("raw_price_1e3", 60)])
def test_ar1_matches_polyfit(name: str, w: int) -> None:
    x = SERIES[name]()
    fit = K.ar1(x, w)
    ref = _ref_ar1(x, w)
    for field, expected in ref.items():
        scale = np.nanmax(np.abs(expected))
        np.testing.assert_allclose(
            getattr(fit, field), expected, rtol=1e-8, atol=1e-12 * scale, err_msg=f"{name}.{field}"
        )
    np.testing.assert_array_equal(K.ar1_zscore(x, w), fit.zscore)


# ---------------------------------------------------------------- 2. hand examples


def test_sma_hand_example() -> None:
    np.testing.assert_allclose(K.sma([1.0, 2.0, 3.0, 4.0, 5.0], 3), [np.nan, np.nan, 2, 3, 4])


def test_ema_hand_example_seeds_with_mean() -> None:
    # n=3 -> alpha = 0.5; seed at index 2 = mean(2, 4, 6) = 4; then 4 + .5*(8-4) = 6;
    # then 6 + .5*(2-6) = 4.
    np.testing.assert_allclose(K.ema([2.0, 4.0, 6.0, 8.0, 2.0], 3), [np.nan, np.nan, 4, 6, 4])


def test_rsi_hand_example() -> None:
    # close = 10, 11, 10.5, 12, 11, 11.5; n = 3; changes = +1, -0.5, +1.5, -1, +0.5
    # index 3: gain = (1 + 1.5)/3 = 5/6, loss = 0.5/3 = 1/6 -> RSI = 100*(5/6)/1 = 83.333...
    # index 4: gain = (5/6*2 + 0)/3 = 5/9, loss = (1/6*2 + 1)/3 = 4/9 -> RSI = 100*5/9 = 55.555...
    # index 5: gain = (5/9*2 + .5)/3 = 29/54, loss = (4/9*2)/3 = 16/54 -> RSI = 100*29/45
    got = K.rsi([10.0, 11.0, 10.5, 12.0, 11.0, 11.5], 3)
    np.testing.assert_allclose(got, [np.nan] * 3 + [250 / 3, 500 / 9, 2900 / 45], rtol=1e-12)


def test_rsi_degenerate_cases() -> None:
    assert np.all(K.rsi(np.full(10, 5.0), 3)[3:] == 50.0)
    assert np.all(K.rsi(np.arange(1.0, 11.0), 3)[3:] == 100.0)
    assert np.all(K.rsi(np.arange(10.0, 0.0, -1.0), 3)[3:] == 0.0)


def test_atr_hand_example() -> None:
    # true ranges from index 1: max(12-10, |12-10|, |10-10|) = 2, then max(3, 3, 0) = 3, then
    # max(1, |13-13|, |12-13|) = 1; n = 2: seed (2 + 3) / 2 = 2.5, then (2.5 * 1 + 1) / 2 = 1.75
    got = K.atr([11.0, 12.0, 14.0, 13.0], [9.0, 10.0, 11.0, 12.0], [10.0, 11.0, 13.0, 12.5], 2)
    np.testing.assert_allclose(got, [np.nan, np.nan, 2.5, 1.75], rtol=1e-12)


def test_atr_counts_gaps_from_the_previous_close() -> None:
    # bar 1 trades 20..21 after a close at 10: its range is 1 but its true range is 11
    got = K.atr([10.0, 21.0], [10.0, 20.0], [10.0, 20.5], 1)
    np.testing.assert_allclose(got, [np.nan, 11.0])


def test_bollinger_b_hand_example() -> None:
    # n = 3, k = 1: window (1, 2, 6): mean 3, population sd sqrt(14/3); close 6 is
    # (6 - 3) / sd above the mean, so %b = 0.5 + 3 / (2 sd)
    got = K.bollinger_b([1.0, 2.0, 6.0, 6.0, 6.0, 6.0], 3, k=1.0)
    sd = math.sqrt(14 / 3)
    np.testing.assert_allclose(got[:3], [np.nan, np.nan, 0.5 + 3 / (2 * sd)], rtol=1e-12)
    assert np.isnan(got[-1])  # a flat window has no band
    x = _gbm(500, seed=9)
    expected = (x - (K.sma(x, 20) - 2 * K.rolling_std(x, 20))) / (4 * K.rolling_std(x, 20))
    np.testing.assert_allclose(K.bollinger_b(x, 20), expected, rtol=1e-9, atol=1e-12)


def test_log_return_hand_example() -> None:
    got = K.log_return([1.0, math.e, math.e**3, 1.0], k=1)
    np.testing.assert_allclose(got, [np.nan, 1.0, 2.0, -3.0], rtol=1e-12)
    got2 = K.log_return([1.0, 2.0, 4.0, 8.0], k=2)
    np.testing.assert_allclose(got2, [np.nan, np.nan, math.log(4), math.log(4)], rtol=1e-12)


# ---------------------------------------------------------------- 3. warm-up

KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "sma": (lambda x: K.sma(x, 4), 3),
    "ema": (lambda x: K.ema(x, 4), 3),
    "rolling_std": (lambda x: K.rolling_std(x, 4), 3),
    "rolling_std_long": (lambda x: K.rolling_std(x, 20), 19),
    "sma_long": (lambda x: K.sma(x, 20), 19),
    "rsi": (lambda x: K.rsi(x, 4), 4),
    "log_return": (lambda x: K.log_return(x, 3), 3),
    "realised_vol": (lambda x: K.realised_vol(x, 4), 4),
    "dist_ma_sma": (lambda x: K.dist_ma(x, 4), 3),
    "dist_ma_ema": (lambda x: K.dist_ma(x, 4, kind="ema"), 3),
    "ar1_alpha": (lambda x: K.ar1(x, 4).alpha, 4),
    "ar1_beta": (lambda x: K.ar1(x, 4).beta, 4),
    "ar1_resid": (lambda x: K.ar1(x, 4).resid, 4),
    "ar1_zscore": (lambda x: K.ar1_zscore(x, 4), 4),
    "ar1_half_life": (lambda x: K.ar1(x, 4).half_life, 4),
    "bollinger_b": (lambda x: K.bollinger_b(x, 4), 3),
    "atr": (lambda x: K.atr(np.multiply(x, 1.01), np.multiply(x, 0.99), x, 4), 4),
    "zscore": (lambda x: K.zscore(x, 4), 3),
    "simple_return": (lambda x: K.simple_return(x, 3), 3),
    "ma_spread_sma": (lambda x: K.ma_spread(x, 2, 5), 4),
    "ma_spread_ema": (lambda x: K.ma_spread(x, 2, 5, kind="ema"), 4),
    "ma_cross_sma": (lambda x: K.ma_cross(x, 2, 5), 4),
    "ma_cross_ema": (lambda x: K.ma_cross(x, 2, 5, kind="ema"), 4),
}


def _mean_reverting(n: int) -> np.ndarray:
    """Prices whose every AR(1) window has 0 < beta < 1, so half_life is defined."""
    rng = np.random.default_rng(11)
    x = np.empty(n)
    x[0] = 150.0
    for t in range(1, n):
        x[t] = 10.0 + 0.9 * x[t - 1] + rng.normal(0.0, 0.01)  # decays towards 100
    return x


@pytest.mark.parametrize("name", list(KERNELS))
def test_first_valid_index(name: str) -> None:
    func, first = KERNELS[name]
    x = _mean_reverting(40)

    out = func(x)

    assert out.dtype == np.float64
    assert out.shape == x.shape
    assert np.all(np.isnan(out[:first]))
    assert not np.any(np.isnan(out[first:]))


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("length", [0, 1, "first"])
def test_short_input_is_all_nan(name: str, length: int | str) -> None:
    func, first = KERNELS[name]
    size = first if length == "first" else int(length)

    out = func(_mean_reverting(40)[:size])

    assert out.shape == (size,)
    assert np.all(np.isnan(out))


# ---------------------------------------------------------------- 4. causality

prices = st.lists(
    st.floats(1.0, 1e4, allow_nan=False, allow_infinity=False), min_size=5, max_size=300
)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=1e-12, atol=0.0)
    return bool(np.all(both_nan | close))


@settings(max_examples=60, deadline=None, database=None)
@given(values=prices, data=st.data())
def test_prefix_value_equals_full_value(values: list[float], data: st.DataObject) -> None:
    x = np.array(values)
    t = data.draw(st.integers(0, x.size - 1), label="t")
    for name, (func, _) in KERNELS.items():
        assert _same(func(x[: t + 1])[-1:], func(x)[t : t + 1]), name


@settings(max_examples=60, deadline=None, database=None)
@given(values=prices, tail=prices, data=st.data())
def test_future_changes_do_not_leak(
    values: list[float], tail: list[float], data: st.DataObject
) -> None:
    x = np.array(values)
    t = data.draw(st.integers(0, x.size - 1), label="t")
    y = x.copy()
    new_tail = np.resize(np.array(tail), x.size - t - 1)
    y[t + 1 :] = new_tail
    for name, (func, _) in KERNELS.items():
        assert _same(func(x)[: t + 1], func(y)[: t + 1]), name


# ---------------------------------------------------------------- 5. no mutation


@pytest.mark.parametrize("name", list(KERNELS))
def test_inputs_not_mutated_and_read_only_accepted(name: str) -> None:
    func, _ = KERNELS[name]
    x = _mean_reverting(30)
    before = x.copy()
    ro = x.copy()
    ro.setflags(write=False)

    out = func(x)
    out_ro = func(ro)
    out_list = func(list(before))

    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(ro, before)
    np.testing.assert_array_equal(out_ro, out)
    np.testing.assert_array_equal(out_list, out)
    assert not np.shares_memory(out, x)


# ---------------------------------------------------------------- 6. validation


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: K.rsi([1.0, 2.0], 0), r"rsi: n must be an integer >= 1, got 0"),
        (lambda: K.sma([1.0, 2.0], -3), r"sma: n must be an integer >= 1, got -3"),
        (lambda: K.ema([1.0, 2.0], 2.5), r"ema: n must be an integer >= 1, got 2.5"),
        (lambda: K.sma([1.0, 2.0], True), r"sma: n must be an integer >= 1, got True"),
        (lambda: K.rolling_std([1.0, 2.0], 1), r"rolling_std: n must be an integer >= 2"),
        (lambda: K.realised_vol([1.0, 2.0], 1), r"realised_vol: n must be an integer >= 2"),
        (lambda: K.log_return([1.0, 2.0], 0), r"log_return: k must be an integer >= 1"),
        (lambda: K.dist_ma([1.0, 2.0], "3"), r"dist_ma: n must be an integer >= 1, got '3'"),
        (lambda: K.dist_ma([1.0, 2.0], 2, kind="wma"), r"kind must be 'sma' or 'ema'"),
        (lambda: K.ar1([1.0, 2.0], 2), r"ar1: window must be an integer >= 3, got 2"),
        (lambda: K.sma(np.ones((3, 2)), 2), r"sma: x must be a 1-D array, got shape \(3, 2\)"),
        (lambda: K.rsi(5.0, 2), r"rsi: x must be a 1-D array, got shape \(\)"),
        (lambda: K.bollinger_b([1.0, 2.0], 1), r"bollinger_b: n must be an integer >= 2"),
        (lambda: K.bollinger_b([1.0], 2, k=0), r"bollinger_b: k must be a positive finite number"),
        (lambda: K.bollinger_b([1.0], 2, k=np.inf), r"k must be a positive finite number, got inf"),
        (lambda: K.bollinger_b([1.0], 2, k=True), r"k must be a positive finite number, got True"),
        (lambda: K.atr([1.0], [1.0], [1.0], 0), r"atr: n must be an integer >= 1, got 0"),
        (lambda: K.zscore([1.0, 2.0], 1), r"zscore: n must be an integer >= 2, got 1"),
        (lambda: K.simple_return([1.0], 0), r"simple_return: k must be an integer >= 1"),
        (lambda: K.ma_spread([1.0], 5, 5), r"ma_spread: slow must be greater than fast"),
        (lambda: K.ma_cross([1.0], 0, 5), r"ma_cross: fast must be an integer >= 1, got 0"),
        (lambda: K.ma_cross([1.0], 2, 5, kind="wma"), r"ma_cross: kind must be 'sma' or 'ema'"),
        (
            lambda: K.atr([2.0, 3.0], [1.0], [1.5, 2.5], 1),
            r"atr: high, low and close must have the same length, got 2, 1 and 2",
        ),
    ],
)
def test_invalid_arguments_raise(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_numpy_integer_window_accepted() -> None:
    np.testing.assert_array_equal(K.sma([1.0, 2.0, 3.0], np.int64(2)), [np.nan, 1.5, 2.5])


# ---------------------------------------------------------------- 7. ar1 behaviour


def test_ar1_recovers_simulated_mean_reversion() -> None:
    rng = np.random.default_rng(2024)
    eps = rng.normal(0.0, 1.0, 20_000)
    x = np.empty(20_000)
    x[0] = 100.0
    for t in range(1, x.size):
        x[t] = 10.0 + 0.9 * x[t - 1] + eps[t]  # mean 100

    fit = K.ar1(x, 5_000)

    assert np.all(np.isnan(fit.beta[:5_000]))
    valid = fit.beta[5_000:]
    assert abs(np.median(valid) - 0.9) < 0.02
    assert abs(fit.beta[-1] - 0.9) < 0.02
    assert fit.half_life[-1] == pytest.approx(math.log(2) / -math.log(0.9), rel=0.2)
    assert abs(np.nanmean(fit.alpha[5_000:]) / (1 - np.median(valid)) - 100.0) < 1.0
    assert 0.5 < np.std(fit.zscore[5_000:]) < 1.5


def test_ar1_constant_series_is_nan() -> None:
    fit = K.ar1(np.full(50, 123.45), 10)

    for field in ("alpha", "beta", "resid", "zscore", "half_life"):
        assert np.all(np.isnan(getattr(fit, field))), field
    assert np.all(np.isnan(K.ar1_zscore(np.full(50, 0.1), 10)))


def test_ar1_exact_line_has_nan_zscore() -> None:
    x = 5.0 + 0.5 * np.arange(60.0)  # x[s] = 0.5 + x[s-1] exactly: s == 0

    fit = K.ar1(x, 10)

    np.testing.assert_allclose(fit.beta[10:], 1.0, rtol=1e-9)
    assert np.all(np.isnan(fit.zscore))
    assert np.all(np.isnan(fit.half_life))


def test_ar1_half_life_nan_when_trending() -> None:
    rng = np.random.default_rng(5)
    x = np.empty(300)
    x[0] = 100.0
    for t in range(1, x.size):
        x[t] = 1.01 * x[t - 1] + rng.normal(0.0, 0.1)

    fit = K.ar1(x, 30)

    assert np.all(fit.beta[30:] > 1.0)
    assert np.all(np.isnan(fit.half_life))
    assert not np.any(np.isnan(fit.zscore[30:]))


# ---------------------------------------------------------------- 8. O(1) kernels, long and hostile


@njit(cache=True)
def _two_pass_std(x: np.ndarray, n: int) -> np.ndarray:
    """Reference: mean, then the mean squared deviation, per window."""
    out = np.full(x.size, np.nan)
    for t in range(n - 1, x.size):
        w = x[t - n + 1 : t + 1]
        mean = w.sum() / n
        out[t] = math.sqrt(((w - mean) ** 2).sum() / n)
    return out


@njit(cache=True)
def _two_pass_ar1(x: np.ndarray, w: int) -> np.ndarray:
    """Reference: per window, exact means, then centred moments, then residuals.

    Rows: alpha, beta, resid, zscore, half_life.
    """
    out = np.full((5, x.size), np.nan)
    for t in range(w, x.size):
        mx = 0.0
        my = 0.0
        for s in range(t - w + 1, t + 1):
            mx += x[s - 1]
            my += x[s]
        mx /= w
        my /= w
        sxx = sxy = syy = 0.0
        for s in range(t - w + 1, t + 1):
            dx = x[s - 1] - mx
            dy = x[s] - my
            sxx += dx * dx
            sxy += dx * dy
            syy += dy * dy
        if sxx == 0.0:
            continue
        b = sxy / sxx
        ssr = 0.0
        r = 0.0
        for s in range(t - w + 1, t + 1):
            r = (x[s] - my) - b * (x[s - 1] - mx)
            ssr += r * r
        sd = math.sqrt(ssr / (w - 2))
        out[0, t] = my - b * mx
        out[1, t] = b
        out[2, t] = r
        if sd > 1e-10 * math.sqrt(syy / w):
            out[3, t] = r / sd
        if 0.0 < b < 1.0:
            out[4, t] = -math.log(2.0) / math.log(b)
    return out


def _assert_ar1_matches_two_pass(x: np.ndarray, w: int, atol: float = 1e-12) -> None:
    """Equal to ``rtol=1e-8`` plus ``atol`` times each field's largest magnitude."""
    fit = K.ar1(x, w)
    ref = _two_pass_ar1(x, w)
    for i, field in enumerate(("alpha", "beta", "resid", "zscore")):
        got, expected = getattr(fit, field), ref[i]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=field)
        scale = np.nanmax(np.abs(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=atol * scale, err_msg=field)
    # The half-life -ln 2 / ln(beta) is ill-conditioned as beta -> 1 (its relative error is that
    # of beta over 1 - beta), where any two exact fits disagree; compare its reciprocal, the
    # decay rate per bar, which is as well conditioned as beta.
    np.testing.assert_array_equal(np.isnan(fit.half_life), np.isnan(ref[4]))
    np.testing.assert_allclose(1 / fit.half_life, 1 / ref[4], rtol=1e-8, atol=1e-12)


def _random_walk(n: int, seed: int, start: float, vol: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start + np.cumsum(rng.normal(0.0, vol, n))


@pytest.mark.parametrize(
    "series",
    [
        pytest.param(lambda: _random_walk(1_000_000, 21, math.log(100.0), 1e-3), id="log_price"),
        pytest.param(lambda: np.exp(_random_walk(1_000_000, 22, math.log(1e4), 2e-4)), id="1e4"),
    ],
)
def test_ar1_matches_exact_fit_over_a_million_values(series: Callable[[], np.ndarray]) -> None:
    x = series()
    for w in (60, 500):
        _assert_ar1_matches_two_pass(x, w)


def test_ar1_matches_exact_fit_across_jumps_flats_and_exact_fits() -> None:
    """Windows where O(1) sums lose digits: each must still equal the exact fit.

    After the drop, prices sit 1e4 spreads above 0, so a z-score near 0 is only defined to about
    1e-11 by any float64 fit, the reference included: values are compared to 1e-11 of their
    scale there, not 1e-12.
    """
    rng = np.random.default_rng(4)
    x = np.concatenate(
        [
            1e4 + np.cumsum(rng.normal(0.0, 1.0, 400)),
            np.full(80, 1e4),  # flat: constant regressor, then constant target
            100.0 + np.cumsum(rng.normal(0.0, 1e-3, 400)),  # a 100x drop, then quiet
            2.0 + 2.0 ** np.arange(12.0, 0.0, -1.0),  # an exact AR(1): beta = 0.5, no residual
            1e-3 * rng.normal(size=300),  # noise around 0
        ]
    )
    for w in (5, 30, 100):
        _assert_ar1_matches_two_pass(x, w, atol=1e-11)


@pytest.mark.parametrize("n", [14, 200])
def test_rolling_std_matches_two_pass_over_a_million_values(n: int) -> None:
    x = np.exp(_random_walk(1_000_000, 23, math.log(1e4), 2e-4))
    np.testing.assert_allclose(K.rolling_std(x, n), _two_pass_std(x, n), rtol=1e-9)


@pytest.mark.parametrize("n", [2, 3, 15, 16, 17, 64, 333])
def test_rolling_std_short_and_long_window_paths_agree_bit_for_bit(n: int) -> None:
    """Two loop layouts, picked by window length for speed, doing the same sums in one order."""
    x = _gbm(5_003, seed=13)
    short, long = np.empty(x.size), np.empty(x.size)

    _std_short_into(x, n, short)
    _std_long_into(x, n, long)

    np.testing.assert_array_equal(short, long)


def test_rolling_std_survives_a_jump_and_a_volatility_collapse() -> None:
    """Running sums of x and x^2 keep the jump's rounding for ever; ours never subtract it."""
    rng = np.random.default_rng(8)
    x = np.concatenate([1e6 + rng.normal(0.0, 1e3, 300), 1.0 + rng.normal(0.0, 1e-6, 700)])
    for n in (2, 7, 64, 250):
        np.testing.assert_allclose(K.rolling_std(x, n), _two_pass_std(x, n), rtol=1e-9)


@pytest.mark.parametrize(
    "name, func, first",
    [
        ("sma", lambda x: K.sma(x, 5), 4),
        ("rolling_std", lambda x: K.rolling_std(x, 5), 4),
        ("bollinger_b", lambda x: K.bollinger_b(x, 5), 4),
        ("sma_long", lambda x: K.sma(x, 70), 69),
        ("rolling_std_long", lambda x: K.rolling_std(x, 70), 69),
    ],
)
def test_window_kernels_are_nan_only_where_the_window_holds_a_nan(
    name: str, func: Callable[[np.ndarray], np.ndarray], first: int
) -> None:
    x = _gbm(1_000, seed=12)
    bad = np.array([100, 101, 400, 777])
    x[bad] = np.nan
    n = first + 1
    window_has_nan = np.array(
        [t >= first and np.isnan(x[t - n + 1 : t + 1]).any() for t in range(x.size)]
    )
    clean = x.copy()
    clean[bad] = 1.0  # any finite value: the compared windows never contain these bars

    out = func(x)

    np.testing.assert_array_equal(np.isnan(out[first:]), window_has_nan[first:], err_msg=name)
    keep = ~window_has_nan
    np.testing.assert_allclose(out[keep], func(clean)[keep], rtol=1e-9, err_msg=name)


# ---------------------------------------------------------------- 9. executed docs


@pytest.mark.parametrize(
    "module", ["moving", "dispersion", "wilder", "returns", "meanrev", "crossover", "__init__"]
)
def test_docstring_examples_run(module: str) -> None:
    name = "mlalgo.features.kernels" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
