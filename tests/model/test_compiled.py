"""The compiled evaluator predicts the same doubles as ``lgb.Booster`` loaded from the same text,
and so does the live per-bar evaluator (LightGBM's C library through ctypes, ``NativeModel``).

Every comparison is exact (``assert_array_equal``): raw scores and probabilities, on real
features with their warm-up NaN rows, on models that force each missing-value path, and on
inputs placed on thresholds, on LightGBM's zero threshold and one ulp either side of both.
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlalgo.model.compiled as compiled_module
from mlalgo.config import load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.model.compiled import K_ZERO_THRESHOLD, CompiledModel
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.model.native import NativeModel

TRAIN_YAML = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
BASE = {"verbosity": -1, "num_threads": 1, "deterministic": True, "seed": 7}
K = K_ZERO_THRESHOLD
EDGES = np.array(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-36, -1e-36, 1e-300, -1e-300]
    + [s * v for s in (1, -1) for v in (K, np.nextafter(K, 0), np.nextafter(K, 1))]
)


SPLIT = {
    "split_feature": [0],
    "threshold": [0.5],
    "decision_type": [2],
    "left_child": [-1],
    "right_child": [-2],
    "leaf_value": [-1.0, 1.0],
}
LEAF = {"leaf_value": [0.25]}


def model_text(trees: list[dict], objective: str = "regression") -> str:
    """A one-feature model in LightGBM's text format, as LightGBM itself loads it."""
    objective = "binary sigmoid:1" if objective == "binary" else objective
    lines = [
        "tree",
        "version=v4",
        "num_class=1",
        "num_tree_per_iteration=1",
        "label_index=0",
        "max_feature_idx=0",
        f"objective={objective}",
        "feature_names=f0",
        "feature_infos=none",
        "",
    ]
    keys = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
    for i, tree in enumerate(trees):
        lines += [f"Tree={i}", f"num_leaves={len(tree['leaf_value'])}", "num_cat=0"]
        for key in (*keys, "leaf_value"):
            lines.append(f"{key}=" + " ".join(map(repr, tree.get(key, []))))
        lines += ["is_linear=0", "shrinkage=1", ""]
    return "\n".join([*lines, "end of trees", ""])


def assert_same(text: str, x: np.ndarray) -> CompiledModel:
    """Compiled (both layouts, when the trees allow both), native and LightGBM agree bit for
    bit on ``x``: raw, transformed and row by row."""
    booster = lgb.Booster(model_str=text)
    expected, raw = booster.predict(x), booster.predict(x, raw_score=True)
    model = CompiledModel.from_text(text)
    layouts = ["walk"] if model.layout == "walk" else ["bitmask", "walk"]
    for layout in layouts:
        compiled = CompiledModel.from_text(text, layout=layout)
        assert compiled.layout == layout
        np.testing.assert_array_equal(compiled.predict(x), expected)
        np.testing.assert_array_equal(compiled.predict_raw(x), raw)
        np.testing.assert_array_equal([compiled.predict_one(row) for row in x], expected)
    native = NativeModel(text, model.feature_names)
    np.testing.assert_array_equal([native.predict_one(row) for row in x], expected)
    return model


def split_thresholds(text: str) -> list[tuple[int, float]]:
    """``(feature, threshold)`` of every split in the text."""
    pairs, feature = [], []
    for line in text.splitlines():
        if line.startswith("split_feature="):
            feature = [int(f) for f in line.split("=")[1].split()]
        elif line.startswith("threshold="):
            pairs += zip(feature, map(float, line.split("=")[1].split()), strict=True)
    return pairs


def probe_rows(text: str, n_features: int, n: int, seed: int = 0) -> np.ndarray:
    """Rows mixing each feature's thresholds (and the doubles next to them), the zero edges,
    NaN, infinities and ordinary values."""
    splits = split_thresholds(text)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    for f in range(n_features):
        thr = np.array([value for feature, value in splits if feature == f])
        pool = np.concatenate(
            [EDGES, thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf), x[:50, f]]
        )
        x[:, f] = rng.choice(pool, size=n)
    return x


def train(params: dict, x: np.ndarray, y: np.ndarray, rounds: int) -> str:
    return lgb.train(
        {**BASE, **params}, lgb.Dataset(x, y), num_boost_round=rounds
    ).model_to_string()


def missing_types(text: str) -> set[int]:
    """LightGBM's missing type (0 None, 1 Zero, 2 NaN) of every split in the text."""
    lines = [line for line in text.splitlines() if line.startswith("decision_type=")]
    return {(int(d) >> 2) & 3 for line in lines for d in line.split("=")[1].split()}


def synthetic(n: int = 2000, seed: int = 1, nan: float = 0.0, zero: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[rng.random(x.shape) < zero] = 0.0
    x[rng.random(x.shape) < nan] = np.nan
    signal = np.nan_to_num(x[:, 0], nan=1.0) - np.where(x[:, 1] == 0.0, 1.0, x[:, 1])
    y = (signal + rng.normal(size=n) > 0).astype(np.float64)
    return x, y


# ------------------------------------------------------------------ real features of the sample


@pytest.fixture(scope="module")
def real(sample_bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The default spec's features for all sample symbols, warm-up NaN rows included, and
    next-open labels (NaN where there is none)."""
    spec = load_pipeline(TRAIN_YAML).feature_spec
    x = compute(spec, sample_bars)
    y = make_labels(sample_bars, horizon=1)["y"].to_numpy()
    return x.to_numpy(dtype=np.float64), y


@pytest.mark.parametrize("complete_rows_only", [True, False], ids=["pipeline", "nan-in-training"])
def test_real_features_every_row_bit_equal(real, complete_rows_only: bool) -> None:
    x, y = real
    keep = ~np.isnan(y) & (~np.isnan(x).any(axis=1) if complete_rows_only else True)
    model = LightGBMSignalClassifier(n_jobs=1).fit(x[keep], y[keep])  # the pipeline's defaults
    text = model.booster_.model_to_string()

    compiled = assert_same(text, x)

    assert np.isnan(x).any(axis=1).sum() > 100  # warm-up rows are in the comparison
    assert compiled.n_trees == 200
    np.testing.assert_array_equal(compiled.predict(x), model.predict_proba(x)[:, 1])
    if not complete_rows_only:
        assert 2 in missing_types(text)


# ------------------------------------------------------------------ every missing-value path


@pytest.mark.parametrize(
    ("params", "nan", "zero", "expected_missing"),
    [
        ({}, 0.15, 0.0, {2}),  # NaN seen in training: missing type NaN
        ({"zero_as_missing": True}, 0.0, 0.2, {1}),  # zeros are missing: type Zero
        ({"zero_as_missing": True}, 0.15, 0.2, {1}),  # NaN is also zero then
        ({"use_missing": False}, 0.15, 0.2, {0}),  # no missing handling: NaN compares as 0
        ({}, 0.0, 0.2, {0}),  # no NaN in training: type None
    ],
    ids=["nan", "zero", "zero+nan", "use_missing=false", "none"],
)
def test_missing_value_paths(params, nan, zero, expected_missing) -> None:
    x, y = synthetic(nan=nan, zero=zero)
    text = train({"objective": "binary", "num_leaves": 8, **params}, x, y, 40)

    assert missing_types(text) == expected_missing
    assert_same(text, probe_rows(text, 4, 4000))


@pytest.mark.parametrize("decision_type", [0, 2, 4, 6, 8, 10])
@pytest.mark.parametrize("threshold", [0.0, K, -K, 1e-36, -1e-36, 1.5, -2.0])
def test_one_split_matches_lightgbm_on_edges(decision_type: int, threshold: float) -> None:
    tree = {"threshold": [threshold], "decision_type": [decision_type]}
    text = model_text([{**SPLIT, **tree}, LEAF])
    x = np.concatenate([EDGES, [threshold, np.nextafter(threshold, 9), -threshold]])[:, None]

    assert_same(text, x)


def test_single_leaf_trees_alone_and_between_splits() -> None:
    x, y = synthetic()
    alone = train({"objective": "binary", "min_data_in_leaf": 10_000}, x, y, 5)
    mixed = model_text([LEAF, {**SPLIT, "decision_type": [8]}, LEAF, SPLIT, LEAF], "binary")

    assert CompiledModel.from_text(alone).n_splits == 0
    assert_same(alone, x)
    assert_same(mixed, np.concatenate([EDGES, [0.5, np.nextafter(0.5, 1), 7.0]])[:, None])


@pytest.mark.parametrize(("num_leaves", "layout"), [(64, "bitmask"), (65, "walk")])
def test_trees_over_64_leaves_are_walked(num_leaves: int, layout: str) -> None:
    x, y = synthetic(n=4000, nan=0.05, zero=0.05)
    params = {"objective": "binary", "num_leaves": num_leaves, "min_data_in_leaf": 5}
    text = train(params, x, y, 20)

    model = assert_same(text, probe_rows(text, 4, 3000))
    assert f"num_leaves={num_leaves}\n" in text
    assert model.layout == layout
    if layout == "walk":
        with pytest.raises(ValueError, match="'bitmask' for trees of up to 64 leaves"):
            CompiledModel.from_text(text, layout="bitmask")


def test_many_trees_and_a_regression_objective() -> None:
    x, y = synthetic(n=3000, nan=0.05)
    target = y + np.nan_to_num(x[:, 2])
    text = train(
        {"objective": "regression", "num_leaves": 31, "learning_rate": 0.05}, x, target, 1500
    )

    model = assert_same(text, probe_rows(text, 4, 3000))
    assert model.n_trees == 1500 and model.objective == "regression"


def test_early_stopped_model_predicts_with_the_trees_its_text_holds() -> None:
    x, y = synthetic(n=3000, nan=0.05)
    train_set = lgb.Dataset(x[:2000], y[:2000])
    valid = lgb.Dataset(x[2000:], y[2000:], reference=train_set)
    booster = lgb.train(
        {**BASE, "objective": "binary", "learning_rate": 0.3},
        train_set,
        num_boost_round=300,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,
    )
    text = booster.model_to_string()

    model = assert_same(text, x)
    assert model.n_trees == booster.best_iteration < booster.current_iteration()
    np.testing.assert_array_equal(model.predict(x), booster.predict(x))


@pytest.mark.parametrize("sigmoid", ["1.0131", "0.7", "2.5"])
def test_sigmoid_is_read_as_lightgbm_reads_it(sigmoid: str) -> None:
    x, y = synthetic()
    text = train({"objective": "binary", "sigmoid": float(sigmoid)}, x, y, 30)

    assert f"objective=binary sigmoid:{sigmoid}\n" in text
    assert_same(text, probe_rows(text, 4, 3000))


# ------------------------------------------------------------------ refusals and the contract


def test_categorical_splits_are_refused() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 12, 3000), rng.normal(size=3000)]).astype(float)
    y = np.isin(x[:, 0], [1, 4, 7, 9]).astype(float)
    booster = lgb.train(
        {**BASE, "objective": "binary"},
        lgb.Dataset(x, y, categorical_feature=[0]),
        num_boost_round=5,
    )

    with pytest.raises(ValueError, match="categorical splits"):
        CompiledModel.from_text(booster.model_to_string())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"objective": "cross_entropy"}, "objective 'cross_entropy"),
        ({"objective": "regression_l1"}, "objective 'regression_l1"),
        ({"objective": "regression", "reg_sqrt": True}, "objective 'regression sqrt"),
        ({"objective": "multiclass", "num_class": 3}, "single-output"),
        ({"objective": "binary", "linear_tree": True}, "linear tree"),
    ],
)
def test_unsupported_models_are_refused(params: dict, match: str) -> None:
    x, y = synthetic()
    if params.get("num_class"):
        y = y + (x[:, 3] > 0)

    with pytest.raises(ValueError, match=match):
        CompiledModel.from_text(train(params, np.nan_to_num(x), y, 3))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace("end of trees", ""), "no 'end of trees'"),
        (lambda t: t.replace("left_child=-1", "left_child=0"), "child index"),
        (lambda t: t.replace("split_feature=0", "split_feature=3"), "feature index"),
        (lambda t: t.replace("decision_type=2", "decision_type=14"), "invalid decision_type"),
        (lambda t: t.replace("leaf_value=-1.0 1.0", "leaf_value=-1.0"), "leaf_value has 1"),
        (lambda t: t.replace("Tree=1", "Tree=2"), "expected 'Tree=1'"),
    ],
)
def test_malformed_text_is_refused(edit, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompiledModel.from_text(edit(model_text([SPLIT, LEAF])))


def test_wrong_shapes_are_refused_with_the_feature_names() -> None:
    model = CompiledModel.from_text(model_text([SPLIT, LEAF]))

    with pytest.raises(ValueError, match=r"1 features \(f0\), got shape \(2,\)"):
        model.predict_one(np.zeros(2))
    with pytest.raises(ValueError, match=r"rows of 1 features \(f0\), got shape \(3,\)"):
        model.predict(np.zeros(3))
    assert model.predict_one([0.25]) == model.predict(np.array([[0.25]]))[0]


def test_importing_and_predicting_loads_no_heavy_library(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text(model_text([SPLIT, LEAF], "binary"))
    code = (
        "import sys, json, numpy as np\n"
        "from mlalgo.model.compiled import CompiledModel\n"
        f"m = CompiledModel.from_text(open({str(tmp_path / 'model.txt')!r}).read())\n"
        "m.predict_one(np.zeros(1)); m.predict(np.zeros((3, 1)))\n"
        "print(json.dumps(sorted(set(sys.modules) & "
        "{'pandas', 'lightgbm', 'sklearn', 'mlflow', 'pyarrow'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert json.loads(out.stdout) == []


def test_docstring_examples() -> None:
    assert doctest.testmod(compiled_module, raise_on_error=True).attempted >= 3


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    objective=st.sampled_from(["binary", "regression"]),
    num_leaves=st.integers(2, 12),
    rounds=st.integers(1, 30),
    missing=st.sampled_from([{}, {"zero_as_missing": True}, {"use_missing": False}]),
    nan=st.sampled_from([0.0, 0.2]),
    zero=st.sampled_from([0.0, 0.3]),
)
def test_random_small_models_agree(seed, objective, num_leaves, rounds, missing, nan, zero):
    x, y = synthetic(n=300, seed=seed, nan=nan, zero=zero)
    params = {"objective": objective, "num_leaves": num_leaves, "min_data_in_leaf": 5, **missing}
    text = train(params, x, y, rounds)

    assert_same(text, probe_rows(text, 4, 500, seed=seed))
