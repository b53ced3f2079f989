"""The live per-bar evaluators: LightGBM's own C library through ctypes, and the RowModel that
answers with it until the compiled evaluator has loaded in the background. The library's
values are checked bit for bit with the compiled evaluator's in ``test_compiled.py`` (every
model there goes through both); here, what is particular to them: how the library is found
and loaded, what it refuses, the handover, and that a live bundle load needs neither numba
nor the ``lightgbm`` Python package."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model.test_compiled import LEAF, SPLIT, model_text, probe_rows, synthetic, train

from mlalgo.model.compiled import CompiledModel
from mlalgo.model.native import NativeModel, library_path, native_model
from mlalgo.model.row import RowModel

HEAVY = ("numba", "lightgbm", "pandas", "sklearn", "mlflow")


def test_the_library_is_found_inside_the_installed_wheel() -> None:
    path = library_path()
    assert path is not None and path.is_file()
    assert path.parent.parent.name == "lightgbm"


def test_one_row_is_predicted_and_rows_of_another_shape_are_refused_with_the_names() -> None:
    text = model_text([SPLIT, LEAF], "binary")
    model = native_model(text, ("f0",))
    assert isinstance(model, NativeModel) and model.n_features == 1

    low, high = model.predict_one(np.array([0.25])), model.predict_one([0.75])  # a list too

    assert low == pytest.approx(1 / (1 + np.exp(0.75))) and high > 0.5
    with pytest.raises(ValueError, match=r"expected one row of 1 features \(f0\), got shape"):
        model.predict_one(np.zeros(3))
    strided = np.array([[0.75, 9.0]])[:, 0]  # not contiguous: copied, not misread
    assert model.predict_one(strided) == high


def test_a_text_lightgbm_refuses_is_an_error_in_its_own_words() -> None:
    text = model_text([SPLIT]).replace("max_feature_idx=0\n", "")
    with pytest.raises(ValueError, match=r"^LightGBM: .*max_feature_idx"):
        NativeModel(text, ("f0",))


def test_names_that_disagree_with_the_model_are_refused() -> None:
    with pytest.raises(ValueError, match="LightGBM reads 1 features, the header names 2"):
        NativeModel(model_text([SPLIT]), ("f0", "f1"))


def test_a_live_bundle_load_imports_neither_numba_nor_the_lightgbm_package(
    tmp_path: Path,
) -> None:
    from mlalgo.bundle import export_bundle
    from mlalgo.config import ExecutionConfig
    from mlalgo.features.spec import FeatureSpec, LogReturn
    from mlalgo.policy import DecisionPolicy

    spec = FeatureSpec(features=(LogReturn(k=1),))
    text = model_text([SPLIT, LEAF], "binary").replace(
        "feature_names=f0", f"feature_names={spec.names[0]}"
    )
    path = export_bundle(
        tmp_path, "tiny", model_text=text, spec=spec, policy=DecisionPolicy(),
        execution=ExecutionConfig(), info={"symbols": ["X"]},
        input_example=[{"time": "2020-01-01T00:00:00+00:00", "symbol": "X", "open": 1.0,
                        "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}],
    )  # fmt: skip
    code = (
        "import sys, json, numpy as np\n"
        "from mlalgo.bundle import load_bundle\n"
        f"b = load_bundle({str(path)!r}, live=True)\n"
        f"heavy = sorted(set(sys.modules) & {set(HEAVY)!r})\n"
        "first = b.row_model.evaluator\n"
        "p = b.predict_one(np.array([0.75]))\n"
        "b.row_model.wait_compiled(60)\n"
        "print(json.dumps([first, p, heavy, b.row_model.evaluator]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    first, p, heavy, then = json.loads(out.stdout)
    assert (first, heavy, then) == ("native", [], "compiled")
    assert p == native_model(text, tuple(spec.names)).predict_one(np.array([0.75]))


def test_the_row_model_hands_over_to_the_compiled_evaluator_without_changing_a_number() -> None:
    x, y = synthetic(n=500, seed=4, nan=0.1)
    text = train({"objective": "binary", "num_leaves": 15}, x, y, 60)
    rows = probe_rows(text, 4, 300, seed=2)
    want = CompiledModel.from_text(text).predict(rows)
    model = RowModel(text, ("Column_0", "Column_1", "Column_2", "Column_3"))
    assert model.evaluator == "native"

    before = [model.predict_one(row) for row in rows]
    assert model.evaluator == "native"  # until its owner asks for the compiled one
    model.load_compiled()
    assert model.wait_compiled(60) and model.evaluator == "compiled"
    after = [model.predict_one(row) for row in rows]

    np.testing.assert_array_equal(before, want)
    np.testing.assert_array_equal(after, want)
    assert "compiled" in repr(model)


def test_without_lightgbms_library_the_compiled_evaluator_answers_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lightgbm" else real(name, *a)
    )
    text = model_text([SPLIT, LEAF], "binary")

    assert library_path() is None and native_model(text, ("f0",)) is None
    model = RowModel(text, ("f0",))
    assert model.evaluator == "compiled" and model.wait_compiled(0)
    assert model.predict_one(np.array([0.75])) == CompiledModel.from_text(text).predict_one(
        np.array([0.75])
    )
