"""Purged walk-forward splits: no training label ever reaches into its test block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.rows import NAT, arrays, barrier_frame, footprint_clashes, shared_calendar_rows

from mlalgo.labels import make_labels
from mlalgo.model.splits import Fold, PurgedWalkForward

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"


def frame(times: np.ndarray, t1: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """``X`` indexed by UTC time alone (one row per symbol and time) and ``t1`` on that index."""
    index = pd.DatetimeIndex(times, name="time").tz_localize("UTC")
    X = pd.DataFrame({"x": np.arange(len(times), dtype=np.float64)}, index=index)
    return X, pd.Series(pd.DatetimeIndex(t1).tz_localize("UTC"), index=index, name="t1")


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
    X, t1_series = frame(times, t1)
    splitter = PurgedWalkForward(min_train=20, step=15, t1=t1_series)

    folds = list(splitter.folds(times, t1))
    pairs = list(splitter.split(X))

    assert len(pairs) == len(folds) == splitter.get_n_splits(X) == splitter.get_n_splits() == 3
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
        list(PurgedWalkForward(min_train=10, step=step).folds(times, t1))


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


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    n_symbols=st.integers(1, 4),
    n_bars=st.integers(20, 120),
    horizon=st.integers(1, 15),
    sigma=st.floats(0.002, 0.08),
    min_train=st.integers(1, 60),
    step=st.integers(1, 30),
    rolling=st.booleans(),
    max_train=st.integers(1, 60),
    embargo=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_with_triple_barrier_labels_no_training_row_touches_a_test_row_and_embargo_is_moot(
    n_symbols: int,
    n_bars: int,
    horizon: int,
    sigma: float,
    min_train: int,
    step: int,
    rolling: bool,
    max_train: int,
    embargo: int,
    seed: int,
) -> None:
    X, t1 = barrier_frame(n_symbols, n_bars, horizon, sigma, seed)
    times, ends = arrays(X, t1)
    calendar = np.unique(times)
    params: dict[str, Any] = {
        "min_train": min(min_train, n_bars - 1),
        "step": step,
        "window": "rolling" if rolling else "expanding",
        "max_train": max_train if rolling else None,
        "t1": t1,
    }
    splitter = PurgedWalkForward(**params, embargo=embargo)

    splits = list(splitter.split(X))

    starts = range(params["min_train"], n_bars, step)
    assert len(splits) == len(starts) == splitter.get_n_splits(X) == splitter.get_n_splits()
    for (train, test), start in zip(splits, starts, strict=True):
        block = calendar[start : start + step]
        np.testing.assert_array_equal(test, np.flatnonzero(np.isin(times, block)))
        assert not np.isnat(ends[train]).any()
        assert (ends[train] < block[0]).all()  # no label window reaches into the block
        assert footprint_clashes(train, test, times, ends).size == 0
        lo = calendar[max(start - max_train, 0)] if rolling else calendar[0]
        expected = ~np.isnat(ends) & (ends < block[0]) & (times >= lo)
        np.testing.assert_array_equal(train, np.flatnonzero(expected))
    # every training row precedes its block, so no row is in an embargo: folds are unchanged
    for (train, test), (train0, test0) in zip(
        splits, PurgedWalkForward(**params).split(X), strict=True
    ):
        np.testing.assert_array_equal(train, train0)
        np.testing.assert_array_equal(test, test0)


def test_on_the_real_sample_with_triple_barrier_labels_no_training_row_touches_a_test_row(
    sample_bars: pd.DataFrame,
) -> None:
    labels = make_labels(sample_bars, horizon=10, kind="triple_barrier")
    X = labels[["ret"]]  # only the index matters to the splitter
    times, ends = arrays(X, labels["t1"])
    splitter = PurgedWalkForward(min_train=504, step=252, embargo=5, t1=labels["t1"])

    splits = list(splitter.split(X))

    assert len(splits) == splitter.get_n_splits(X) == 18  # 5031 bars: 504 + 17 * 252 + 243
    for train, test in splits:
        block_start = times[test].min()
        assert (ends[train] < block_start).all()
        assert footprint_clashes(train, test, times, ends).size == 0
        # the purge removes a label only if it reaches the block: at most 11 bars per symbol
        before = (times < block_start) & ~np.isnat(ends)
        purged = int(before.sum()) - len(train)
        n_symbols = X.index[before].get_level_values("symbol").nunique()
        assert 0 < purged <= n_symbols * 11


def test_cross_val_score_fits_a_logistic_regression_on_exactly_the_purged_folds(
    real_xy: tuple[pd.DataFrame, np.ndarray, pd.Series],
) -> None:
    X, y, t1 = real_xy
    splitter = PurgedWalkForward(min_train=504, step=252, t1=t1)
    model = make_pipeline(StandardScaler(), LogisticRegression())

    scores = cross_val_score(model, X, y, cv=splitter, scoring="roc_auc")
    used = cross_validate(model, X, y, cv=splitter, return_indices=True)["indices"]

    assert len(scores) == splitter.get_n_splits(X) == 4
    assert ((scores > 0.3) & (scores < 0.7)).all()  # daily direction: near a coin flip
    for train, test, (want_train, want_test) in zip(
        used["train"], used["test"], splitter.split(X), strict=True
    ):
        np.testing.assert_array_equal(train, want_train)
        np.testing.assert_array_equal(test, want_test)
    assert splitter.get_n_splits(X) <= splitter.get_n_splits()  # t1 covers warm-up rows too


def _utc_rows() -> tuple[pd.DataFrame, pd.Series]:
    _, times, t1 = shared_calendar_rows(2, 30, 3, seed=1)
    return frame(times, t1)


def _early_t1(X: pd.DataFrame, t1: pd.Series) -> tuple[Any, Any]:
    return X, t1.where(t1.isna(), t1.index.get_level_values("time").min())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X, t1: (X.to_numpy(), t1), "DataFrame indexed by time"),
        (lambda X, t1: (X.reset_index(drop=True), t1), "indexed by RangeIndex"),
        (lambda X, t1: (X.rename_axis(["symbol", "date"]), t1), "one named 'time'"),
        (lambda X, t1: (X, None), "t1=make_labels"),
        (lambda X, t1: (X, t1.to_numpy()), "pandas Series"),
        (lambda X, t1: (X, pd.Series(1.0, index=t1.index)), "datetimes"),
        (lambda X, t1: (X, t1.dt.tz_localize(None)), "timezone-aware or both naive"),
        (lambda X, t1: (X, pd.concat([t1, t1.iloc[:1]])), "duplicate"),
        (lambda X, t1: (X, t1.iloc[5:]), "no label end in t1"),
        (_early_t1, "before their own time"),
        (lambda X, t1: (X.iloc[:0], t1), "no rows"),
    ],
)
def test_split_refuses_inputs_it_cannot_purge_and_says_what_to_pass(
    mutate: Any, message: str
) -> None:
    X, t1 = mutate(*barrier_frame(2, 40, 3, 0.01, seed=1))

    with pytest.raises(ValueError, match=message):
        list(PurgedWalkForward(min_train=10, step=5, t1=t1).split(X))


@pytest.mark.parametrize("embargo", [-1, 1.5, True])
def test_an_embargo_that_is_not_a_whole_number_of_bars_is_refused(embargo: Any) -> None:
    X, t1 = _utc_rows()

    with pytest.raises(ValueError, match="embargo"):
        list(PurgedWalkForward(min_train=10, step=5, embargo=embargo, t1=t1).split(X))


def test_get_n_splits_needs_the_calendar_from_x_or_t1() -> None:
    X, t1 = _utc_rows()

    assert PurgedWalkForward(min_train=10, step=5).get_n_splits(X) == 4
    with pytest.raises(ValueError, match="pass X or"):
        PurgedWalkForward(min_train=10, step=5).get_n_splits()
    with pytest.raises(ValueError, match="min_train_bars"):
        PurgedWalkForward(min_train=30, step=5, t1=t1).get_n_splits()


def test_init_only_stores_and_repr_shows_parameters_not_the_series() -> None:
    _, t1 = _utc_rows()
    splitter = PurgedWalkForward(min_train=-1, step=0, window="bad", t1=t1)  # type: ignore[arg-type]

    assert splitter.t1 is t1
    assert repr(splitter) == (
        "PurgedWalkForward(min_train=-1, step=0, window='bad', max_train=None, embargo=0, "
        "t1=<60 label ends>)"
    )
