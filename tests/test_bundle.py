"""The bundle is the contract: what loads is exactly what was exported, or nothing loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlalgo.bundle import (
    EXAMPLE_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    POLICY_FILE,
    SPEC_FILE,
    BundleError,
    export_bundle,
    load_bundle,
)
from mlalgo.config import CostConfig, ExecutionConfig, RiskConfig, load_pipeline
from mlalgo.features.batch import compute
from mlalgo.labels import make_labels
from mlalgo.model.estimators import LightGBMSignalClassifier
from mlalgo.policy import DecisionPolicy

TRAIN_YAML = Path(__file__).resolve().parents[1] / "pipelines" / "train.yaml"
POLICY = DecisionPolicy(long_threshold=0.51, short_threshold=0.49, allow_short=True)
EXECUTION = ExecutionConfig(
    costs=CostConfig(commission_bps=3.0), sizing="whole", risk=RiskConfig(stop_loss=0.05)
)
EXAMPLE = [
    {"time": "2013-02-28T00:00:00+00:00", "symbol": "AAPL", "open": 1.0, "high": 2.0}
    | {"low": 0.5, "close": 1.5, "volume": 100.0}
]


@pytest.fixture(scope="module")
def trained(sample_bars: pd.DataFrame):
    """A small model on real AAPL features, and the rows to predict with."""
    spec = load_pipeline(TRAIN_YAML).feature_spec
    bars = sample_bars.loc[["AAPL"]]
    X = compute(spec, bars)
    y = make_labels(bars, horizon=1)["y"]
    mask = X.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
    model = LightGBMSignalClassifier(n_estimators=20).fit(X.loc[mask], y.loc[mask])
    return spec, model, X.loc[mask].to_numpy()[-50:]


def export(root: Path, trained, **info) -> Path:
    spec, model, _ = trained
    return export_bundle(
        root,
        "sig",
        model_text=model.booster_.model_to_string(),
        spec=spec,
        policy=POLICY,
        execution=EXECUTION,
        input_example=EXAMPLE,
        info={"mlflow_run_id": "abc", **info},
    )


def test_round_trip_predicts_exactly_as_the_trained_model(tmp_path: Path, trained) -> None:
    spec, model, rows = trained

    bundle = load_bundle(export(tmp_path, trained, training_range={"start": "a", "end": "b"}))

    np.testing.assert_array_equal(bundle.predict_proba(rows), model.predict_proba(rows)[:, 1])
    assert bundle.spec == spec and bundle.policy == POLICY and bundle.execution == EXECUTION
    assert bundle.input_example == EXAMPLE
    assert bundle.manifest["mlflow_run_id"] == "abc"
    assert bundle.manifest["training_range"] == {"start": "a", "end": "b"}
    assert bundle.manifest["feature_spec_hash"] == spec.hash
    assert set(bundle.manifest["files"]) == {MODEL_FILE, SPEC_FILE, POLICY_FILE, EXAMPLE_FILE}


def test_bundle_holds_text_and_json_only(tmp_path: Path, trained) -> None:
    path = export(tmp_path, trained)

    assert sorted(p.name for p in path.iterdir()) == sorted(
        [MODEL_FILE, SPEC_FILE, POLICY_FILE, EXAMPLE_FILE, MANIFEST_FILE]
    )
    assert (path / MODEL_FILE).read_text().startswith("tree\n")
    for name in (SPEC_FILE, POLICY_FILE, EXAMPLE_FILE, MANIFEST_FILE):
        json.loads((path / name).read_text())


def test_signal_goes_through_the_shared_decision_policy(tmp_path: Path, trained) -> None:
    bundle = load_bundle(export(tmp_path, trained))
    rows = trained[2]

    p = bundle.predict_proba(rows)
    expected = np.where(p > 0.51, 1.0, np.where(p < 0.49, -1.0, 0.0))

    np.testing.assert_array_equal(bundle.signal(rows), expected)


def test_versions_count_up_and_leave_no_temporary_folders(tmp_path: Path, trained) -> None:
    first, second = export(tmp_path, trained), export(tmp_path, trained)

    assert (first.name, second.name) == ("1", "2")
    assert sorted(p.name for p in (tmp_path / "sig").iterdir()) == ["1", "2"]
    assert json.loads((second / MANIFEST_FILE).read_text())["version"] == 2


@pytest.mark.parametrize("victim", [MODEL_FILE, SPEC_FILE, POLICY_FILE, EXAMPLE_FILE])
def test_an_altered_file_is_refused_by_name(tmp_path: Path, trained, victim: str) -> None:
    path = export(tmp_path, trained)
    target = path / victim
    target.write_bytes(target.read_bytes().replace(b"0", b"1", 1))

    with pytest.raises(BundleError, match=f"{victim}: sha256 does not match the manifest"):
        load_bundle(path)


def test_a_policy_edited_to_trade_more_is_refused(tmp_path: Path, trained) -> None:
    path = export(tmp_path, trained)
    doc = json.loads((path / POLICY_FILE).read_text())
    doc["decision"]["size"] = 5.0
    (path / POLICY_FILE).write_text(json.dumps(doc))

    with pytest.raises(BundleError, match=POLICY_FILE):
        load_bundle(path)


def test_costs_edited_to_look_cheaper_are_refused(tmp_path: Path, trained) -> None:
    path = export(tmp_path, trained)
    doc = json.loads((path / POLICY_FILE).read_text())
    doc["execution"]["costs"]["commission_bps"] = 0.0
    (path / POLICY_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True))

    with pytest.raises(BundleError, match=f"{POLICY_FILE}: sha256 does not match"):
        load_bundle(path)


def test_missing_and_extra_files_are_refused_by_name(tmp_path: Path, trained) -> None:
    missing = export(tmp_path, trained)
    (missing / SPEC_FILE).unlink()
    with pytest.raises(BundleError, match=f"{SPEC_FILE}: missing"):
        load_bundle(missing)

    extra = export(tmp_path, trained)
    (extra / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(BundleError, match=r"unexpected file.*model\.pkl"):
        load_bundle(extra)

    no_manifest = export(tmp_path, trained)
    (no_manifest / MANIFEST_FILE).unlink()
    with pytest.raises(BundleError, match=f"{MANIFEST_FILE}: missing"):
        load_bundle(no_manifest)


def test_manifest_problems_are_refused(tmp_path: Path, trained) -> None:
    path = export(tmp_path, trained)
    manifest_path = path / MANIFEST_FILE
    good = json.loads(manifest_path.read_text())

    manifest_path.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)

    manifest_path.write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        load_bundle(path)

    files = {k: v for k, v in good["files"].items() if k != POLICY_FILE}
    manifest_path.write_text(json.dumps({**good, "files": files}))
    with pytest.raises(BundleError, match="'files' must list"):
        load_bundle(path)

    names = list(reversed(good["feature_names"]))
    manifest_path.write_text(json.dumps({**good, "feature_names": names}))
    with pytest.raises(BundleError, match="feature_names differ"):
        load_bundle(path)


def test_a_model_trained_on_other_features_is_refused(tmp_path: Path, trained) -> None:
    spec, model, _ = trained
    other = spec.model_copy(update={"features": tuple(reversed(spec.features))})

    path = export_bundle(
        tmp_path,
        "sig",
        model_text=model.booster_.model_to_string(),
        spec=other,
        policy=POLICY,
        execution=EXECUTION,
        input_example=EXAMPLE,
        info={},
    )

    with pytest.raises(BundleError, match="the model expects features"):
        load_bundle(path)


def test_not_a_bundle_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle folder"):
        load_bundle(tmp_path / "nothing")


def test_predict_proba_refuses_the_wrong_number_of_features(tmp_path: Path, trained) -> None:
    bundle = load_bundle(export(tmp_path, trained))

    with pytest.raises(ValueError, match="expected rows of 8 features"):
        bundle.predict_proba(np.zeros((1, 3)))


def test_a_consistent_bundle_with_a_malformed_example_is_refused(tmp_path: Path, trained) -> None:
    """Hashes protect against tampering; parsing still checks what an exporter wrote."""
    import hashlib

    path = export(tmp_path, trained)
    bad = json.dumps([{"time": "2013-02-28", "close": 1.0}]).encode()
    (path / EXAMPLE_FILE).write_bytes(bad)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["files"][EXAMPLE_FILE] = hashlib.sha256(bad).hexdigest()
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(BundleError, match=f"does not parse.*{EXAMPLE_FILE}: each record needs"):
        load_bundle(path)


def test_loading_and_predicting_imports_no_heavy_libraries(tmp_path: Path, trained) -> None:
    """The live side loads bundles: LightGBM (and through it pandas) must stay out."""
    import subprocess
    import sys

    path = export(tmp_path, trained)
    code = (
        "import sys, numpy as np\n"
        "from mlalgo.bundle import load_bundle\n"
        f"b = load_bundle({str(path)!r})\n"
        "print(b.predict_one(np.zeros(len(b.feature_names))))\n"
        "print(sorted(m for m in ('pandas', 'lightgbm', 'sklearn', 'mlflow', 'optuna') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.splitlines()[-1] == "[]"
    assert 0.0 < float(out.stdout.splitlines()[0]) < 1.0
