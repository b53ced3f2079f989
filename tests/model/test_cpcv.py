"""Combinatorial purged CV: every test-group combination, purged and embargoed, chained into paths.

The helpers that build rows are copied from test_splits.py on purpose: test modules do not import
each other (pytest runs with --import-mode=importlib), and each file should read on its own.
"""

from __future__ import annotations

from math import comb
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
from mlalgo.model.cpcv import CombinatorialFold, CombinatorialPurgedCV

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"


def check_splits(
    cv: CombinatorialPurgedCV,
    splits: list[tuple[np.ndarray, np.ndarray]],
    times: np.ndarray,
    t1: np.ndarray,
) -> None:
    """Everything the class docstring promises, restated from the calendar up."""
    n, k, embargo = cv.n_groups, cv.n_test_groups, cv.embargo
    calendar = np.unique(times)
    bars = np.array_split(calendar, n)  # the groups, as calendar times
    group = np.select([np.isin(times, b) for b in bars], range(n), -1)
    labelled = ~np.isnat(t1)
    assert len(splits) == cv.get_n_splits() == comb(n, k)
    assert len(cv.test_groups()) == comb(n, k) == len(set(cv.test_groups()))
    times_tested = np.zeros(len(times), dtype=int)
    for (train, test), test_groups in zip(splits, cv.test_groups(), strict=True):
        # test rows are exactly the rows of the test groups
        np.testing.assert_array_equal(test, np.flatnonzero(np.isin(group, test_groups)))
        times_tested[test] += 1
        assert labelled[train].all()
        assert footprint_clashes(train, test, times, t1).size == 0
        allowed = labelled & ~np.isin(group, test_groups)
        for g in test_groups:
            span_end = max(bars[g][-1], t1[(group == g) & labelled].max(initial=bars[g][-1]))
            purged = (t1 >= bars[g][0]) & (times <= span_end)
            embargoed = np.isin(times, calendar[calendar > span_end][:embargo])
            allowed &= ~purged & ~embargoed
            # in the brief's words: no label reaches into the group and nothing trains on the
            # embargo bars after the group's last bar
            assert not ((t1[train] >= bars[g][0]) & (times[train] <= bars[g][-1])).any()
            after_group = calendar[calendar > bars[g][-1]][:embargo]
            assert not np.isin(times[train], after_group).any()
        # and nothing more is thrown away than the purge and the embargo require
        np.testing.assert_array_equal(train, np.flatnonzero(allowed))
    assert (times_tested == comb(n - 1, k - 1)).all()


@settings(max_examples=50, deadline=None, database=None, derandomize=True)
@given(
    n_symbols=st.integers(1, 4),
    n_bars=st.integers(8, 90),
    max_h=st.integers(1, 15),
    n_groups=st.integers(2, 8),
    n_test_groups=st.integers(1, 7),
    embargo=st.integers(0, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_with_random_per_row_horizons_every_split_is_purged_and_embargoed(
    n_symbols: int,
    n_bars: int,
    max_h: int,
    n_groups: int,
    n_test_groups: int,
    embargo: int,
    seed: int,
) -> None:
    _, times, t1 = shared_calendar_rows(n_symbols, n_bars, max_h, seed)
    cv = CombinatorialPurgedCV(n_groups, min(n_test_groups, n_groups - 1), embargo)

    folds = list(cv.folds(times, t1))

    assert [f.index for f in folds] == list(range(len(folds)))
    assert [f.test_groups for f in folds] == cv.test_groups()
    check_splits(cv, [(f.train, f.test) for f in folds], times, t1)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    n_symbols=st.integers(1, 4),
    n_bars=st.integers(20, 120),
    horizon=st.integers(1, 15),
    sigma=st.floats(0.002, 0.08),
    n_groups=st.integers(2, 8),
    n_test_groups=st.integers(1, 7),
    embargo=st.integers(0, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_with_triple_barrier_labels_every_split_is_purged_and_embargoed(
    n_symbols: int,
    n_bars: int,
    horizon: int,
    sigma: float,
    n_groups: int,
    n_test_groups: int,
    embargo: int,
    seed: int,
) -> None:
    X, t1 = barrier_frame(n_symbols, n_bars, horizon, sigma, seed)
    cv = CombinatorialPurgedCV(n_groups, min(n_test_groups, n_groups - 1), embargo, t1=t1)

    splits = list(cv.split(X))

    check_splits(cv, splits, *arrays(X, t1))


def test_a_worked_example_purges_both_sides_and_embargoes_after_the_test_labels_end() -> None:
    calendar = np.arange(16).astype("timedelta64[D]") + np.datetime64("2020-01-01", "ns")
    t1 = np.concatenate([calendar[2:], [NAT, NAT]])  # row i reads bars i+1, i+2
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=1, embargo=1)

    folds = list(cv.folds(calendar, t1))

    # groups: bars 0-3, 4-7, 8-11, 12-15
    assert [f.test_groups for f in folds] == [(0,), (1,), (2,), (3,)]
    # group 1's labels read up to bar 9: purge 2, 3 (labels read bar 4 or 5) and 8, 9 (stand on
    # bars the test labels read); embargo bar 10; 14 and 15 have no label
    np.testing.assert_array_equal(folds[1].test, [4, 5, 6, 7])
    np.testing.assert_array_equal(folds[1].train, [0, 1, 11, 12, 13])
    np.testing.assert_array_equal(folds[0].train, [7, 8, 9, 10, 11, 12, 13])  # 4, 5 purged, 6
    np.testing.assert_array_equal(folds[2].train, [0, 1, 2, 3, 4, 5])  # 6, 7, 12, 13 purged
    np.testing.assert_array_equal(folds[3].train, list(range(10)))  # 10, 11 read bars 12, 13
    assert all(isinstance(f, CombinatorialFold) for f in folds)


@pytest.mark.parametrize(
    ("n_groups", "n_test_groups"), [(n, k) for n in range(2, 9) for k in range(1, n)]
)
def test_paths_use_every_tested_group_of_every_split_exactly_once(
    n_groups: int, n_test_groups: int
) -> None:
    cv = CombinatorialPurgedCV(n_groups, n_test_groups)
    splits = cv.test_groups()

    paths = cv.paths()

    n_paths = comb(n_groups, n_test_groups) * n_test_groups // n_groups
    assert n_paths == comb(n_groups - 1, n_test_groups - 1)
    assert paths.shape == (n_paths, n_groups)
    # every path takes each group from a split that tested it ...
    assert all(g in splits[paths[p, g]] for p in range(n_paths) for g in range(n_groups))
    # ... and every (split, tested group) prediction lands in exactly one path
    used = sorted((int(paths[p, g]), g) for p in range(n_paths) for g in range(n_groups))
    assert used == sorted((s, g) for s, gs in enumerate(splits) for g in gs)


def test_afml_default_six_groups_two_tested_gives_fifteen_splits_and_five_paths() -> None:
    cv = CombinatorialPurgedCV()

    assert cv.get_n_splits() == 15
    assert cv.paths().shape == (5, 6)


def test_assemble_paths_gives_every_row_one_prediction_per_path_from_the_right_split() -> None:
    X, t1 = barrier_frame(3, 60, 5, 0.02, seed=3)
    cv = CombinatorialPurgedCV(5, 2, embargo=2, t1=t1)
    splits = list(cv.split(X))
    # prediction of split s for row i: s * 1000 + i, so each value says where it came from
    predictions = [s * 1000.0 + test for s, (_, test) in enumerate(splits)]

    paths = cv.assemble_paths(X, predictions)

    times, _ = arrays(X, t1)
    bars = np.array_split(np.unique(times), 5)
    group = np.select([np.isin(times, b) for b in bars], range(5), -1)
    assert paths.shape == (len(X), comb(4, 1))
    expected = cv.paths()[:, group].T * 1000.0 + np.arange(len(X))[:, None]
    np.testing.assert_array_equal(paths, expected)


def test_on_the_real_sample_with_triple_barrier_labels_every_split_is_purged_and_embargoed(
    sample_bars: pd.DataFrame,
) -> None:
    labels = make_labels(sample_bars, horizon=10, kind="triple_barrier")
    X = labels[["ret"]]  # only the index matters to the splitter
    times, ends = arrays(X, labels["t1"])
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=5, t1=labels["t1"])

    splits = list(cv.split(X))

    check_splits(cv, splits, times, ends)
    # the embargo bites: it drops 5 bars of every symbol after each test group but the last
    unembargoed = CombinatorialPurgedCV(6, 2, t1=labels["t1"]).split(X)
    for (train, _), (train0, _), test_groups in zip(
        splits, unembargoed, cv.test_groups(), strict=True
    ):
        dropped = np.setdiff1d(train0, train)
        assert np.isin(train, train0).all()
        n_followed = len(set(test_groups) - {5, *(g - 1 for g in test_groups)})
        assert len(np.unique(times[dropped])) == 5 * n_followed


def test_cross_val_score_fits_a_logistic_regression_on_exactly_the_purged_splits(
    real_xy: tuple[pd.DataFrame, np.ndarray, pd.Series],
) -> None:
    X, y, t1 = real_xy
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=5, t1=t1)
    model = make_pipeline(StandardScaler(), LogisticRegression())

    scores = cross_val_score(model, X, y, cv=cv, scoring="roc_auc")
    used = cross_validate(model, X, y, cv=cv, return_indices=True)["indices"]

    assert len(scores) == cv.get_n_splits(X) == 15
    assert ((scores > 0.3) & (scores < 0.7)).all()  # daily direction: near a coin flip
    for train, test, (want_train, want_test) in zip(
        used["train"], used["test"], cv.split(X), strict=True
    ):
        np.testing.assert_array_equal(train, want_train)
        np.testing.assert_array_equal(test, want_test)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_groups": 1, "n_test_groups": 1}, "n_groups >= 2"),
        ({"n_groups": 6, "n_test_groups": 0}, "1 <= n_test_groups < n_groups"),
        ({"n_groups": 6, "n_test_groups": 6}, "1 <= n_test_groups < n_groups"),
        ({"n_groups": 6.0, "n_test_groups": 2}, "whole numbers"),
        ({"n_groups": 6, "n_test_groups": True}, "whole numbers"),
        ({"embargo": -1}, "embargo"),
        ({"embargo": 2.5}, "embargo"),
    ],
)
def test_impossible_parameters_are_refused_before_any_split(
    params: dict[str, Any], message: str
) -> None:
    cv = CombinatorialPurgedCV(**params)

    with pytest.raises(ValueError, match=message):
        cv.get_n_splits()
    with pytest.raises(ValueError, match=message):
        list(cv.split(None))  # parameters are checked before the data


def test_a_calendar_shorter_than_n_groups_is_refused() -> None:
    X, t1 = barrier_frame(2, 20, 3, 0.01, seed=1)
    X = X[X.index.get_level_values("time") < pd.Timestamp("2020-01-06", tz="UTC")]

    with pytest.raises(ValueError, match="5 distinct times cannot be cut into n_groups=6"):
        list(CombinatorialPurgedCV(6, 2, t1=t1).split(X))


def test_split_checks_x_and_t1_like_walk_forward_does() -> None:
    X, t1 = barrier_frame(2, 40, 3, 0.01, seed=1)

    with pytest.raises(ValueError, match="t1=make_labels"):
        list(CombinatorialPurgedCV().split(X))
    with pytest.raises(ValueError, match="no label end in t1"):
        list(CombinatorialPurgedCV(t1=t1.iloc[3:]).split(X))
    with pytest.raises(ValueError, match="one value per row"):
        list(
            CombinatorialPurgedCV().folds(
                np.zeros(3, "datetime64[ns]"), np.zeros(2, "datetime64[ns]")
            )
        )


def test_assemble_paths_refuses_predictions_that_do_not_match_the_splits() -> None:
    X, t1 = barrier_frame(2, 40, 3, 0.01, seed=1)
    cv = CombinatorialPurgedCV(4, 2, t1=t1)
    tests = [test for _, test in cv.split(X)]

    with pytest.raises(ValueError, match="expected 6 prediction arrays"):
        cv.assemble_paths(X, [np.zeros(len(t)) for t in tests[:-1]])
    with pytest.raises(ValueError, match="one value per test row"):
        cv.assemble_paths(X, [np.zeros(len(t) + 1) for t in tests])


def test_repr_shows_parameters_not_the_series() -> None:
    _, t1 = barrier_frame(1, 20, 3, 0.01, seed=1)

    assert repr(CombinatorialPurgedCV(t1=t1)) == (
        "CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=0, t1=<20 label ends>)"
    )
