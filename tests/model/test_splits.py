"""Purged walk-forward splits: no training label ever reaches into its test block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlalgo.labels import make_labels
from mlalgo.model.splits import Fold, PurgedWalkForward

NAT = np.datetime64("NaT", "ns")


def shared_calendar_rows(
    n_symbols: int, n_bars: int, max_h: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of several symbols on one daily calendar, shuffled, with a random label horizon each.

    Returns (calendar, times, t1): row ``i`` of a symbol at bar ``b`` has
    ``t1 = calendar[b + h]`` with ``h`` in 1..max_h, NaT when that runs past the end.
    """
    rng = np.random.default_rng(seed)
    calendar = np.arange(n_bars).astype("timedelta64[D]") + np.datetime64("2020-01-01", "ns")
    bar = np.tile(np.arange(n_bars), n_symbols)
    end = bar + rng.integers(1, max_h + 1, size=bar.size)
    t1 = np.where(end < n_bars, calendar[np.minimum(end, n_bars - 1)], NAT)
    order = rng.permutation(bar.size)
    return calendar, calendar[bar][order], t1[order]


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    n_symbols=st.integers(1, 4),
    n_bars=st.integers(12, 90),
    min_train=st.integers(1, 40),
    step=st.integers(1, 25),
    rolling=st.booleans(),
    max_train=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_fold_trains_only_on_labels_that_end_before_its_test_block(
    n_symbols: int,
    n_bars: int,
    min_train: int,
    step: int,
    rolling: bool,
    max_train: int,
    seed: int,
) -> None:
    min_train = min(min_train, n_bars - 1)
    calendar, times, t1 = shared_calendar_rows(n_symbols, n_bars, 10, seed)
    splitter = PurgedWalkForward(
        min_train=min_train,
        step=step,
        window="rolling" if rolling else "expanding",
        max_train=max_train if rolling else None,
    )

    folds = list(splitter.folds(times, t1))

    starts = list(range(min_train, n_bars, step))
    assert [f.index for f in folds] == list(range(len(starts)))
    tested = []
    for fold, start in zip(folds, starts, strict=True):
        block = calendar[start : start + step]
        assert len(block) == step or start + step >= n_bars  # only the last may be shorter
        assert (fold.test_start, fold.test_end) == (block[0], block[-1])
        # the test block is exactly the rows on its calendar bars
        np.testing.assert_array_equal(fold.test, np.flatnonzero(np.isin(times, block)))
        tested.append(times[fold.test])
        # purge: every training row starts before the block and its label ends before it
        train_t1 = t1[fold.train]
        assert not np.isnat(train_t1).any()
        assert (train_t1 < fold.test_start).all()
        assert (times[fold.train] < fold.test_start).all()
        # and nothing more was thrown away than the purge and the window require
        lo = calendar[max(start - max_train, 0)] if rolling else calendar[0]
        expected = np.flatnonzero(
            ~np.isnat(t1) & (t1 < block[0]) & (times < block[0]) & (times >= lo)
        )
        np.testing.assert_array_equal(fold.train, expected)
        if rolling:
            assert len(np.unique(times[fold.train])) <= max_train
    # blocks are consecutive, do not overlap, and cover exactly the calendar after min_train
    all_tested = np.concatenate(tested)
    assert len(all_tested) == n_symbols * (n_bars - min_train)
    np.testing.assert_array_equal(np.unique(all_tested), calendar[min_train:])


def test_split_yields_the_train_and_test_positions_of_each_fold() -> None:
    _, times, t1 = shared_calendar_rows(3, 60, 5, seed=7)
    splitter = PurgedWalkForward(min_train=20, step=15)

    folds = list(splitter.folds(times, t1))
    pairs = list(splitter.split(times, t1))

    assert len(pairs) == len(folds) == 3
    for (train, test), fold in zip(pairs, folds, strict=True):
        np.testing.assert_array_equal(train, fold.train)
        np.testing.assert_array_equal(test, fold.test)
        assert isinstance(fold, Fold)


def test_a_label_ending_on_the_first_test_bar_is_purged() -> None:
    calendar = np.arange(10).astype("timedelta64[D]") + np.datetime64("2020-01-01", "ns")
    t1 = np.concatenate([calendar[2:], [NAT, NAT]])  # horizon 2
    splitter = PurgedWalkForward(min_train=6, step=4)

    (fold,) = splitter.folds(calendar, t1)

    # rows 0..3 end at bars 2..5, before bar 6; rows 4 and 5 end at bars 6 and 7: purged
    np.testing.assert_array_equal(fold.train, [0, 1, 2, 3])
    np.testing.assert_array_equal(fold.test, [6, 7, 8, 9])


@pytest.mark.parametrize("min_train", [30, 31])
def test_min_train_at_or_beyond_the_calendar_is_refused_naming_the_setting(
    min_train: int,
) -> None:
    _, times, t1 = shared_calendar_rows(2, 30, 3, seed=1)

    with pytest.raises(ValueError, match="min_train_bars"):
        list(PurgedWalkForward(min_train=min_train, step=5).folds(times, t1))


def test_a_rolling_window_without_max_train_is_refused() -> None:
    _, times, t1 = shared_calendar_rows(2, 30, 3, seed=1)

    with pytest.raises(ValueError, match="max_train"):
        list(PurgedWalkForward(min_train=10, step=5, window="rolling").folds(times, t1))


@pytest.mark.parametrize("step", [0, -3])
def test_a_step_below_one_is_refused(step: int) -> None:
    _, times, t1 = shared_calendar_rows(2, 30, 3, seed=1)

    with pytest.raises(ValueError, match="step"):
        list(PurgedWalkForward(min_train=10, step=step).split(times, t1))


def test_on_the_real_sample_no_training_label_reaches_into_its_test_block(
    sample_bars: pd.DataFrame,
) -> None:
    bars = sample_bars.loc[["AAPL", "IBM", "MSFT"]]
    labels = make_labels(bars, horizon=5)
    times = labels.index.get_level_values("time").tz_localize(None).to_numpy()
    t1 = labels["t1"].dt.tz_localize(None).to_numpy()
    splitter = PurgedWalkForward(min_train=504, step=252)

    folds = list(splitter.folds(times, t1))

    assert len(folds) == 11
    purged = 0
    for fold in folds:
        assert (t1[fold.train] < fold.test_start).all()
        assert (times[fold.train] < fold.test_start).all()
        before_block = (times < fold.test_start) & ~np.isnat(t1)
        purged += int(before_block.sum()) - len(fold.train)
    # horizon 5 with next-open entry ends 6 bars later: 6 rows per symbol per fold are purged
    assert purged == 11 * 3 * 6
