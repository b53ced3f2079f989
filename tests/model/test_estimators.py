"""The LightGBM signal classifier: scikit-learn conventions, reproducible, no pickles."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mlalgo.config import load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.model.estimators import LightGBMSignalClassifier

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
SMALL = {"n_estimators": 40, "min_child_samples": 20}


@pytest.fixture(scope="module")
def xy(sample_bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Real features and next-open labels for AAPL and MSFT 2003-2008, warm-up rows dropped."""
    times = sample_bars.index.get_level_values("time")
    bars = sample_bars.loc[
        (times >= pd.Timestamp("2003-01-01", tz="UTC"))
        & (times <= pd.Timestamp("2008-12-31", tz="UTC"))
    ].loc[["AAPL", "MSFT"]]
    X = compute(load_pipeline(TRAIN_YAML).feature_spec, bars)
    y = make_labels(bars, horizon=1)["y"]
    keep = X.notna().all(axis=1) & y.notna()
    return X.loc[keep], y.loc[keep].to_numpy()


@pytest.fixture(scope="module")
def fitted(xy: tuple[pd.DataFrame, np.ndarray]) -> LightGBMSignalClassifier:
    X, y = xy
    return LightGBMSignalClassifier(**SMALL).fit(X, y)


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


def test_feature_names_default_to_f0_f1_for_plain_arrays(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy

    model = LightGBMSignalClassifier(**SMALL).fit(X.to_numpy(), y)

    assert list(model.feature_names_in_) == [f"f{i}" for i in range(8)]


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


def test_two_fits_with_the_same_seed_give_identical_probabilities(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, y = xy

    again = LightGBMSignalClassifier(**SMALL).fit(X, y)

    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def test_a_different_seed_gives_different_probabilities(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, y = xy

    other = LightGBMSignalClassifier(**SMALL, random_state=7).fit(X, y)

    assert not np.array_equal(other.predict_proba(X), fitted.predict_proba(X))


def test_one_and_two_threads_give_identical_probabilities(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, y = xy
    assert fitted.n_jobs == 2

    single = LightGBMSignalClassifier(**SMALL, n_jobs=1).fit(X, y)

    np.testing.assert_array_equal(single.predict_proba(X), fitted.predict_proba(X))


def test_predict_proba_has_two_columns_summing_to_one_and_predict_is_zero_or_one(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, _ = xy

    proba = fitted.predict_proba(X)
    labels = fitted.predict(X)

    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels, (proba[:, 1] > 0.5).astype(int))


def test_an_unfitted_model_refuses_predict_proba_with_not_fitted_error(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, _ = xy
    model = LightGBMSignalClassifier()

    with pytest.raises(NotFittedError):
        model.predict_proba(X)


def test_an_unfitted_model_refuses_predict_with_not_fitted_error(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, _ = xy
    model = LightGBMSignalClassifier()

    with pytest.raises(NotFittedError):
        model.predict(X)


@pytest.mark.parametrize("bad", [2.0, -1.0, np.nan])
def test_fit_refuses_labels_other_than_zero_and_one(
    xy: tuple[pd.DataFrame, np.ndarray], bad: float
) -> None:
    X, y = xy
    y = y.copy()
    y[10] = bad

    with pytest.raises(ValueError, match="0 and 1"):
        LightGBMSignalClassifier(**SMALL).fit(X, y)


def test_fit_refuses_a_label_count_that_differs_from_the_rows(
    xy: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = xy

    with pytest.raises(ValueError, match="one row per label"):
        LightGBMSignalClassifier(**SMALL).fit(X, y[:-1])


def test_predicting_with_the_wrong_feature_count_is_refused(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, _ = xy

    with pytest.raises(ValueError, match="expected 8 features"):
        fitted.predict_proba(X.iloc[:, :7])
    with pytest.raises(ValueError, match="expected 8 features"):
        fitted.predict(X.to_numpy()[0])


def test_the_booster_text_format_round_trips_to_identical_predictions(
    xy: tuple[pd.DataFrame, np.ndarray], fitted: LightGBMSignalClassifier
) -> None:
    X, _ = xy

    text = fitted.booster_.model_to_string()
    loaded = lgb.Booster(model_str=text)

    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), fitted.predict_proba(X)[:, 1])
    assert loaded.feature_name() == list(X.columns)
