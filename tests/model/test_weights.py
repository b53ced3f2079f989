"""Sample weights by label uniqueness: hand-computed cases, invariants and real barrier labels."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlalgo.model.weights as weights_module
from mlalgo.labels import make_labels
from mlalgo.model.weights import uniqueness_weights


def test_two_labels_sharing_one_of_their_two_bars_are_each_three_quarters_unique() -> None:
    # (0, 2] covers bars 1, 2; (1, 3] covers 2, 3; bar 2 is shared: (1 + 1/2) / 2 each
    raw = uniqueness_weights([0, 1], [2, 3], normalise=False)

    np.testing.assert_allclose(raw, [0.75, 0.75])
    np.testing.assert_allclose(uniqueness_weights([0, 1], [2, 3]), [1.0, 1.0])


def test_three_overlapping_labels_weigh_the_middle_one_least() -> None:
    # concurrency on bars 1..4 is 1, 2, 2, 1: (1 + 1/2)/2, (1/2 + 1/2)/2, (1/2 + 1)/2
    raw = uniqueness_weights([0, 1, 2], [2, 3, 4], normalise=False)

    np.testing.assert_allclose(raw, [0.75, 0.5, 0.75])
    np.testing.assert_allclose(uniqueness_weights([0, 1, 2], [2, 3, 4]), [1.125, 0.75, 1.125])


def test_labels_that_only_touch_at_their_ends_are_fully_unique() -> None:
    np.testing.assert_array_equal(uniqueness_weights([0, 2, 4], [2, 4, 6], normalise=False), 1.0)


def test_rows_without_t1_weigh_zero_and_the_rest_average_one() -> None:
    times = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    t1 = pd.Series(times).shift(-2)  # two-bar labels; the last two have no end yet

    w = uniqueness_weights(times, t1)

    np.testing.assert_array_equal(w[3:], 0.0)
    assert w[:3].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w[:3], [1.125, 0.75, 1.125])


def test_concurrency_is_counted_per_symbol_not_pooled() -> None:
    times, t1 = [0, 1, 0, 1], [2, 3, 2, 3]

    per_symbol = uniqueness_weights(times, t1, ["A", "A", "B", "B"], normalise=False)
    pooled = uniqueness_weights(times, t1, normalise=False)

    np.testing.assert_allclose(per_symbol, 0.75)  # as if each symbol were alone
    np.testing.assert_allclose(pooled, 0.375)


@pytest.mark.parametrize(
    ("times", "t1", "message"),
    [
        ([0, 1], [2], "one entry per row"),
        ([0, 1], [np.nan, np.nan], "no row has a label end"),
        ([0, 3], [2, 3], "later than"),
        ([0, np.nan], [2, 3], "times must not hold"),
    ],
)
def test_malformed_inputs_are_refused(times: list[float], t1: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uniqueness_weights(times, t1)


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(1, 8), st.sampled_from("AB")),
        min_size=1,
        max_size=40,
    )
)
def test_uniqueness_times_length_sums_to_the_bars_covered(
    rows: list[tuple[int, int, str]],
) -> None:
    """Each covered bar hands out exactly 1 in total: sum of u_i * |window_i| = covered bars."""
    times = np.array([r[0] for r in rows])
    t1 = times + np.array([r[1] for r in rows])
    symbols = np.array([r[2] for r in rows])
    calendar = np.unique(np.concatenate([times, t1]))
    length = np.searchsorted(calendar, t1, "right") - np.searchsorted(calendar, times, "right")

    raw = uniqueness_weights(times, t1, symbols, normalise=False)

    assert ((raw > 0) & (raw <= 1)).all()
    for s in "AB":
        mine = symbols == s
        covered = {
            b for t, e in zip(times[mine], t1[mine], strict=True) for b in calendar if t < b <= e
        }
        assert (raw[mine] * length[mine]).sum() == pytest.approx(len(covered))


def test_inputs_are_left_unchanged() -> None:
    times, t1 = np.array([0, 1, 2]), np.array([2.0, 3.0, np.nan])

    uniqueness_weights(times, t1)

    np.testing.assert_array_equal(times, [0, 1, 2])
    np.testing.assert_array_equal(t1, [2.0, 3.0, np.nan])


def test_the_docstring_example_runs() -> None:
    assert doctest.testmod(weights_module, raise_on_error=True).attempted >= 1


@pytest.fixture(scope="module")
def bars(sample_bars: pd.DataFrame) -> pd.DataFrame:
    times = sample_bars.index.get_level_values("time")
    window = (times >= pd.Timestamp("2005-01-01", tz="UTC")) & (
        times <= pd.Timestamp("2008-12-31", tz="UTC")
    )
    return sample_bars.loc[window].loc[["AAPL", "MSFT"]]


def _raw_barrier_weights(bars: pd.DataFrame, horizon: int) -> tuple[np.ndarray, pd.DataFrame]:
    labels = make_labels(bars, horizon=horizon, kind="triple_barrier")
    idx = labels.index
    raw = uniqueness_weights(
        idx.get_level_values("time"), labels["t1"], idx.get_level_values("symbol"), normalise=False
    )
    return raw, labels


def test_triple_barrier_labels_of_the_sample_get_weights_in_zero_one(bars: pd.DataFrame) -> None:
    raw, labels = _raw_barrier_weights(bars, horizon=10)
    has_end = labels["t1"].notna().to_numpy()

    assert ((raw[has_end] > 0) & (raw[has_end] <= 1)).all()
    np.testing.assert_array_equal(raw[~has_end], 0.0)
    assert raw[has_end].min() < 0.2  # ten-bar labels starting every bar overlap heavily


def test_longer_label_horizons_overlap_more_and_weigh_less(bars: pd.DataFrame) -> None:
    means = []
    for horizon in (2, 5, 20):
        raw, labels = _raw_barrier_weights(bars, horizon)
        means.append(raw[labels["t1"].notna().to_numpy()].mean())

    assert means[0] > means[1] > means[2]


def test_each_symbol_is_weighted_as_if_it_were_alone(bars: pd.DataFrame) -> None:
    raw, labels = _raw_barrier_weights(bars, horizon=5)
    aapl = labels.index.get_level_values("symbol") == "AAPL"
    alone, _ = _raw_barrier_weights(bars.loc[["AAPL"]], horizon=5)

    np.testing.assert_allclose(raw[aapl], alone)
