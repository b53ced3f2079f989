"""The LightGBM signal models: scikit-learn conventions, reproducible, honest early stopping."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mlalgo.backtest.walkforward import walk_forward
from mlalgo.config import load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels, reach
from mlalgo.model.estimators import LightGBMSignalClassifier, LightGBMSignalRegressor
from mlalgo.model.lgbm import inner_split
from mlalgo.model.splits import PurgedWalkForward

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
SMALL = {"n_estimators": 40, "min_child_samples": 20, "n_jobs": 1}
EARLY = {**SMALL, "n_estimators": 300, "learning_rate": 0.1, "early_stopping_rounds": 10}


def _bars(sample_bars: pd.DataFrame, symbols: list[str]) -> pd.DataFrame:
    times = sample_bars.index.get_level_values("time")
    return sample_bars.loc[
        (times >= pd.Timestamp("2003-01-01", tz="UTC"))
        & (times <= pd.Timestamp("2008-12-31", tz="UTC"))
    ].loc[symbols]


@pytest.fixture(scope="module")
def xy(sample_bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Real features and next-open labels for AAPL and MSFT 2003-2008, warm-up rows dropped;
    rows sorted by (symbol, time), as the pipeline produces them."""
    bars = _bars(sample_bars, ["AAPL", "MSFT"])
    X = compute(load_pipeline(TRAIN_YAML).feature_spec, bars)
    y = make_labels(bars, horizon=1)["y"]
    keep = X.notna().all(axis=1) & y.notna()
    return X.loc[keep], y.loc[keep].to_numpy()


@pytest.fixture(scope="module")
def fitted(xy: tuple[pd.DataFrame, np.ndarray]) -> LightGBMSignalClassifier:
    X, y = xy
    return LightGBMSignalClassifier(**SMALL).fit(X, y)


@pytest.fixture(scope="module")
def stopped(xy: tuple[pd.DataFrame, np.ndarray]) -> LightGBMSignalClassifier:
    X, y = xy
    return LightGBMSignalClassifier(**EARLY, purge_bars=2).fit(X, y)


def test_fit_returns_self_and_sets_fitted_attributes_ending_in_underscore(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy
    model = LightGBMSignalClassifier(**SMALL)

    assert not hasattr(model, "booster_")
    assert model.fit(X, y) is model
    assert isinstance(model.booster_, lgb.Booster)
    np.testing.assert_array_equal(model.classes_, [0, 1])
    assert list(model.feature_names_in_) == list(X.columns)
    assert model.n_features_in_ == X.shape[1] == 8
    assert model.best_iteration_ == 40
    assert model.evals_result_ == {} and model.validation_start_ is None


def test_plain_arrays_set_no_feature_names_and_the_booster_names_them_f0_f1(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy

    model = LightGBMSignalClassifier(**SMALL).fit(X.to_numpy(), y)

    assert not hasattr(model, "feature_names_in_")
    assert model.booster_.feature_name() == [f"f{i}" for i in range(8)]


def test_init_only_stores_parameters_and_clone_and_set_params_round_trip() -> None:
    model = LightGBMSignalClassifier(n_estimators=7, num_leaves=5, random_state=3)

    params = model.get_params()
    twin = clone(model)
    other = LightGBMSignalClassifier().set_params(**params)

    assert params["n_estimators"] == 7 and params["num_leaves"] == 5
    assert twin is not model
    assert twin.get_params() == params
    assert other.get_params() == params
    assert model.lgb_params()["seed"] == 3
    assert model.lgb_params()["num_leaves"] == 5


def test_clone_of_a_fitted_model_is_unfitted(fitted: LightGBMSignalClassifier) -> None:
    twin = clone(fitted)

    assert not hasattr(twin, "booster_")
    assert twin.get_params() == fitted.get_params()


@pytest.mark.parametrize("params", [SMALL, EARLY], ids=["fixed", "early_stopping"])
def test_refits_and_one_vs_two_threads_give_identical_probabilities(
    xy: tuple[pd.DataFrame, np.ndarray], params: dict[str, float]
) -> None:
    X, y = xy

    first = LightGBMSignalClassifier(**{**params, "n_jobs": 2}).fit(X, y).predict_proba(X)
    again = LightGBMSignalClassifier(**{**params, "n_jobs": 2}).fit(X, y).predict_proba(X)
    single = LightGBMSignalClassifier(**params).fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(single, first)


def test_a_different_seed_gives_different_probabilities(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, y = xy

    other = LightGBMSignalClassifier(**SMALL, random_state=7).fit(X, y)

    assert not np.array_equal(other.predict_proba(X), fitted.predict_proba(X))


def test_predict_proba_has_two_columns_summing_to_one_and_predict_is_zero_or_one(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, _ = xy

    proba = fitted.predict_proba(X)
    labels = fitted.predict(X)
    one_row = fitted.predict_proba(X.to_numpy()[:1])

    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels, (proba[:, 1] > 0.5).astype(int))
    np.testing.assert_array_equal(one_row, proba[:1])


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_an_unfitted_model_refuses_to_predict_with_not_fitted_error(
    xy: tuple[pd.DataFrame, np.ndarray], method: str
) -> None:
    X, _ = xy

    with pytest.raises(NotFittedError):
        getattr(LightGBMSignalClassifier(), method)(X)


@pytest.mark.parametrize(
    ("bad", "message"),
    [(2.0, "Only binary classification"), (-1.0, "Only binary classification"), (np.nan, "NaN")],
)
def test_fit_refuses_labels_that_are_not_binary(
    xy: tuple[pd.DataFrame, np.ndarray], bad: float, message: str
) -> None:
    X, y = xy
    y = y.copy()
    y[10] = bad

    with pytest.raises(ValueError, match=message):
        LightGBMSignalClassifier(**SMALL).fit(X, y)


def test_fit_refuses_a_single_class_and_a_label_count_that_differs_from_the_rows(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy

    with pytest.raises(ValueError, match="two classes"):
        LightGBMSignalClassifier(**SMALL).fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LightGBMSignalClassifier(**SMALL).fit(X, y[:-1])


def test_predicting_with_the_wrong_feature_count_is_refused(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, _ = xy

    with pytest.raises(ValueError, match="missing"):
        fitted.predict_proba(X.iloc[:, :7])
    with pytest.raises(ValueError, match="is expecting 8 features"):
        fitted.predict_proba(X.to_numpy()[:, :7])
    with pytest.raises(ValueError, match="Expected 2D array"):
        fitted.predict(X.to_numpy()[0])


def test_the_booster_text_format_round_trips_to_identical_predictions(
    xy: tuple[pd.DataFrame, np.ndarray],
    fitted: LightGBMSignalClassifier,
    stopped: LightGBMSignalClassifier,
) -> None:
    X, _ = xy

    for model in (fitted, stopped):
        loaded = lgb.Booster(model_str=model.booster_.model_to_string())

        np.testing.assert_array_equal(loaded.predict(X.to_numpy()), model.predict_proba(X)[:, 1])
        assert loaded.feature_name() == list(X.columns)


def test_inner_split_takes_the_latest_distinct_times_and_purges_before_them() -> None:
    times = np.tile(np.arange(10), 2)  # two symbols, rows sorted by symbol first

    train, valid = inner_split(times, 0.2, purge_bars=2)

    assert sorted(times[valid]) == [8, 8, 9, 9]
    assert sorted(set(times[train])) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="no inner training rows"):
        inner_split(times, 0.5, purge_bars=5)
    with pytest.raises(ValueError, match="validation_fraction"):
        inner_split(times, 1.0)


def test_early_stopping_validates_on_the_latest_times_and_predicts_with_the_best_iteration(
    xy: tuple[pd.DataFrame, np.ndarray], stopped: LightGBMSignalClassifier
) -> None:
    X, y = xy
    times = X.index.get_level_values("time")
    calendar = times.unique().sort_values()
    valid = np.asarray(times >= stopped.validation_start_)
    curve = stopped.evals_result_["valid"]["binary_logloss"]
    p = stopped.booster_.predict(X.to_numpy()[valid], num_iteration=stopped.best_iteration_)
    logloss = -np.mean(y[valid] * np.log(p) + (1 - y[valid]) * np.log(1 - p))

    assert stopped.validation_start_ == calendar[len(calendar) - int(np.ceil(0.2 * len(calendar)))]
    assert stopped.best_iteration_ < len(curve) < 300
    np.testing.assert_allclose(curve[stopped.best_iteration_ - 1], logloss, rtol=1e-6)
    np.testing.assert_array_equal(stopped.predict_proba(X.to_numpy()[valid])[:, 1], p)


def test_early_stopping_trains_on_exactly_the_purged_rows_before_the_slice(
    xy: tuple[pd.DataFrame, np.ndarray], stopped: LightGBMSignalClassifier
) -> None:
    X, y = xy
    arr = X.to_numpy()
    train, valid = inner_split(X.index.get_level_values("time"), 0.2, purge_bars=2)
    fit_set = lgb.Dataset(arr[train], y[train], feature_name=list(X.columns))
    booster = lgb.train(
        stopped.lgb_params(),
        fit_set,
        num_boost_round=300,
        valid_sets=[lgb.Dataset(arr[valid], y[valid], reference=fit_set)],
        callbacks=[lgb.early_stopping(10, verbose=False)],
    )
    unpurged = LightGBMSignalClassifier(**EARLY, purge_bars=0).fit(X, y)

    assert booster.best_iteration == stopped.best_iteration_
    np.testing.assert_array_equal(booster.predict(arr), stopped.predict_proba(arr)[:, 1])
    assert not np.array_equal(unpurged.predict_proba(arr), stopped.predict_proba(arr))


def test_an_inner_validation_slice_that_weighs_nothing_is_refused(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy
    times = X.index.get_level_values("time")
    weights = np.where(times >= pd.Timestamp("2007-06-01", tz="UTC"), 0.0, 1.0)

    with pytest.raises(ValueError, match="inner validation slice has sample_weight 0"):
        LightGBMSignalClassifier(**EARLY).fit(X, y, sample_weight=weights)


def test_row_order_is_time_order_only_without_a_time_level_or_times(
    xy: tuple[pd.DataFrame, np.ndarray], stopped: LightGBMSignalClassifier
) -> None:
    X, y = xy
    arr, times = X.to_numpy(), X.index.get_level_values("time")

    given = LightGBMSignalClassifier(**EARLY, purge_bars=2).fit(arr, y, times=times)
    by_row = LightGBMSignalClassifier(**EARLY, purge_bars=2).fit(arr, y)

    assert given.validation_start_ == stopped.validation_start_
    np.testing.assert_array_equal(given.predict_proba(arr), stopped.predict_proba(arr))
    # rows are sorted by symbol, so "the last rows" are a late stretch of MSFT's history alone
    assert by_row.validation_start_ == len(arr) - int(np.ceil(0.2 * len(arr)))
    assert not np.array_equal(by_row.predict_proba(arr), stopped.predict_proba(arr))


def test_the_validation_slice_ends_where_the_rows_given_to_fit_end(
    xy: tuple[pd.DataFrame, np.ndarray], stopped: LightGBMSignalClassifier
) -> None:
    """The slice follows the window it is given, so the caller's fold decides what is unseen."""
    X, y = xy
    cut = pd.Timestamp("2008-01-01", tz="UTC")
    early = np.asarray(X.index.get_level_values("time") < cut)

    window = LightGBMSignalClassifier(**EARLY, purge_bars=2).fit(X.loc[early], y[early])

    assert pd.Timestamp("2006-09-01", tz="UTC") < window.validation_start_ < cut
    assert window.validation_start_ < stopped.validation_start_


def test_walk_forward_with_early_stopping_never_reads_past_each_fold(
    sample_bars: pd.DataFrame,
) -> None:
    """Flipping every label from fold 1's test block on and scrambling every later feature
    leaves folds 0-1 untouched, while later folds, which train on those rows, change."""
    bars = _bars(sample_bars, ["AAPL"])
    X = compute(load_pipeline(TRAIN_YAML).feature_spec, bars)
    labels = make_labels(bars, horizon=5)
    splitter = PurgedWalkForward(min_train=252, step=252)

    def make() -> LightGBMSignalClassifier:
        return LightGBMSignalClassifier(**EARLY, purge_bars=reach(5))

    base = walk_forward(X, labels, splitter, make)
    start, end = base.folds["test_start"].iloc[1], base.folds["test_end"].iloc[1]
    times = X.index.get_level_values("time")
    changed_x, changed_labels = X.copy(), labels.copy()
    later = times > end
    changed_x.loc[later] = np.random.default_rng(0).normal(size=(int(later.sum()), X.shape[1]))
    changed_labels.loc[times >= start, "y"] = 1.0 - labels.loc[times >= start, "y"]

    after = walk_forward(changed_x, changed_labels, splitter, make)

    seen = times <= end
    np.testing.assert_array_equal(after.proba[seen], base.proba[seen])
    assert not np.allclose(after.proba[~seen], base.proba[~seen], equal_nan=True)


def test_the_regressor_predicts_the_forward_return_reproducibly_with_early_stopping(
    sample_bars: pd.DataFrame,
) -> None:
    bars = _bars(sample_bars, ["AAPL", "MSFT"])
    X = compute(load_pipeline(TRAIN_YAML).feature_spec, bars)
    ret = make_labels(bars, horizon=5)["ret"]
    keep = X.notna().all(axis=1) & ret.notna()
    X, ret = X.loc[keep], ret.loc[keep].to_numpy()
    params = {**EARLY, "purge_bars": reach(5)}

    model = LightGBMSignalRegressor(**{**params, "n_jobs": 2}).fit(X, ret)
    single = LightGBMSignalRegressor(**params).fit(X, ret)

    pred = model.predict(X)
    assert model.booster_.params["objective"] == "regression"
    assert pred.shape == (len(X),) and not hasattr(model, "classes_")
    assert "l2" in model.evals_result_["valid"]
    assert model.best_iteration_ < 300
    np.testing.assert_array_equal(single.predict(X), pred)
    assert np.abs(pred).max() < np.abs(ret).max()
