"""Two retrain cycles on real bars into a real MLflow store: registered versions, the gate's
aliases and logged decisions, the pyfunc model and `mlflow models serve`, promote and rollback.

The tests run in file order on one store; the last ones move ``@champion``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.processes import free_port, stop
from support.retrain import NAME, RETRAIN_YAML, retrain_overrides, write_bars

from mlalgo.bundle import MANIFEST_FILE, MODEL_FILE, BundleError, load_bundle
from mlalgo.config import ConfigError, MlflowConfig, PipelineConfig, load_pipeline
from mlalgo.pipeline import RunResult, run_pipeline
from mlalgo.promotion import judge
from mlalgo.registry import CHAMPION, MANIFEST_TAG, PREVIOUS_TAG, fluent_store, resolve_bundle
from mlalgo.scoring import signal_records
from mlalgo.tracking import Tracker

ENDS = ("2007-06-30", "2007-12-31")  # the gate promotes both on these bars


@dataclass
class Store:
    root: Path
    tracker: Tracker
    cfg: PipelineConfig
    results: list[RunResult]
    mlflow_yaml: Path
    pipeline_yaml: Path

    def client(self):
        return self.tracker.client()


@pytest.fixture(scope="module")
def store(tmp_path_factory, sample_bars: pd.DataFrame) -> Store:
    root = tmp_path_factory.mktemp("lifecycle")
    uri = f"sqlite:///{root}/mlruns.db"
    mlflow_yaml = root / "mlflow.yaml"
    mlflow_yaml.write_text(yaml.safe_dump({"tracking_uri": uri, "experiment": "lifecycle"}))
    tracker = Tracker(MlflowConfig(tracking_uri=uri, experiment="lifecycle"), root=root)
    bars_file = root / "bars.csv"
    cfg = load_pipeline(RETRAIN_YAML, retrain_overrides(root, bars_file))
    pipeline_yaml = root / "retrain.yaml"
    pipeline_yaml.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    results = []
    for end in ENDS:
        write_bars(sample_bars, bars_file, end)
        results.append(run_pipeline(cfg, tracker=tracker, root=root))
    return Store(root, tracker, cfg, results, mlflow_yaml, pipeline_yaml)


def test_each_cycle_registers_a_version_and_the_gate_promotes_it(store: Store) -> None:
    # Registering used MLflow's fluent API; none of its global store settings leaked out.
    assert os.environ.get("MLFLOW_REGISTRY_URI") is None
    assert os.environ.get("MLFLOW_TRACKING_URI") != store.tracker.tracking_uri
    client = store.client()
    versions = client.search_model_versions(f"name='{NAME}'")
    model = client.get_registered_model(NAME)

    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert [r.model_version for r in store.results] == [f"{NAME}/1", f"{NAME}/2"]
    assert {k: str(v) for k, v in model.aliases.items()} == {CHAMPION: "2", "challenger": "2"}
    v1, v2 = (client.get_model_version(NAME, v) for v in ("1", "2"))
    assert v1.tags["mlalgo.decision"] == v2.tags["mlalgo.decision"] == "promote"
    assert v2.tags[PREVIOUS_TAG] == "1" and PREVIOUS_TAG not in v1.tags
    assert v1.run_id == store.results[0].run_id  # the version is the training run's model
    assert store.results[0].decision.reason.startswith("no champion yet")
    assert "beats champion's" in store.results[1].decision.reason


def test_every_decision_is_a_run_whose_metrics_reproduce_the_verdict(store: Store) -> None:
    client = store.client()
    exp = client.get_experiment_by_name("lifecycle")
    runs = client.search_runs([exp.experiment_id], "tags.`mlalgo.kind` = 'promotion'")
    by_version = {r.data.tags["mlalgo.challenger_version"]: r for r in runs}

    assert set(by_version) == {"1", "2"}
    for version, result in zip(("1", "2"), store.results, strict=True):
        run = by_version[version]
        m = run.data.metrics
        challenger = {
            k[len("challenger_") :]: v for k, v in m.items() if k.startswith("challenger_")
        }
        champion = {k[len("champion_") :]: v for k, v in m.items() if k.startswith("champion_")}
        verdict = judge(challenger, champion or None, store.cfg.stages.promote)[0]

        assert run.data.tags["mlalgo.decision"] == ("promote" if verdict else "reject")
        assert run.info.run_id == result.decision.run_id
        assert run.data.tags["mlalgo.window"].startswith(
            pd.Timestamp(load_bundle(result.bundle_dir).manifest["holdout_start"]).isoformat()
        )
    assert by_version["2"].data.tags["mlalgo.champion_version"] == "1"


def test_the_window_is_out_of_sample_for_both_models(store: Store) -> None:
    first, second = (load_bundle(r.bundle_dir).manifest for r in store.results)
    start = pd.Timestamp(store.results[1].decision.window[0])

    assert pd.Timestamp(first["training_range"]["label_end"]) < start
    assert pd.Timestamp(second["training_range"]["label_end"]) < start
    assert pd.Timestamp(second["holdout_start"]) == start


def test_champion_resolves_to_the_exported_bundle_verified(store: Store, tmp_path: Path) -> None:
    local = resolve_bundle(f"models:/{NAME}@{CHAMPION}", store.tracker, tmp_path / "cache")
    exported = store.results[1].bundle_dir

    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in exported.iterdir())
    for p in exported.iterdir():
        assert (local / p.name).read_bytes() == p.read_bytes()
    tag = store.client().get_model_version(NAME, "2").tags[MANIFEST_TAG]
    assert load_bundle(local).manifest["version"] == 2 and len(tag) == 64


def _artifact_bundle(store: Store, run_id: str) -> Path:
    for manifest in store.root.glob(f"mlartifacts/models/*/artifacts/artifacts/*/{MANIFEST_FILE}"):
        if json.loads(manifest.read_text())["mlflow_run_id"] == run_id:
            return manifest.parent
    raise AssertionError(f"no logged bundle for run {run_id}")


def test_an_artifact_store_edited_behind_the_registry_is_refused(
    store: Store, tmp_path: Path
) -> None:
    stored = _artifact_bundle(store, store.results[0].run_id)
    saved = {p.name: p.read_bytes() for p in stored.iterdir()}
    try:
        model = stored / MODEL_FILE
        model.write_bytes(model.read_bytes().replace(b"0", b"1", 1))
        with pytest.raises(BundleError, match=f"{MODEL_FILE}: sha256 does not match"):
            resolve_bundle(f"models:/{NAME}/1", store.tracker, tmp_path / "a")

        # Re-hash the manifest too: the bundle is consistent, but not what was registered.
        manifest = json.loads(saved[MANIFEST_FILE])
        import hashlib

        manifest["files"][MODEL_FILE] = hashlib.sha256(model.read_bytes()).hexdigest()
        (stored / MANIFEST_FILE).write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match=f"differs from the registry's {MANIFEST_TAG}"):
            resolve_bundle(f"models:/{NAME}/1", store.tracker, tmp_path / "b")
    finally:
        for name, blob in saved.items():
            (stored / name).write_bytes(blob)
    assert resolve_bundle(f"models:/{NAME}/1", store.tracker, tmp_path / "c").is_dir()


def _recent_bars(sample_bars: pd.DataFrame, end: str, n: int) -> pd.DataFrame:
    part = sample_bars.loc[["AAPL", "MSFT"]]
    part = part.loc[part.index.get_level_values("time") <= end]
    frame = part.groupby(level="symbol").tail(n).reset_index()
    frame["time"] = frame["time"].dt.tz_localize(None)
    return frame.loc[:, ["time", "symbol", "open", "high", "low", "close", "volume"]]


def test_the_pyfunc_model_returns_the_bundles_signals(store: Store, sample_bars) -> None:
    import mlflow

    frame = _recent_bars(sample_bars, "2008-03-31", 80)
    with fluent_store(store.tracker.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    expected = signal_records(load_bundle(store.results[1].bundle_dir), frame)

    got = model.predict(frame)

    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == ["time", "symbol", "open", "high", "low", "close", "volume"]
    assert len(got) == 2 * (80 - load_bundle(store.results[1].bundle_dir).spec.warmup)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )
    assert set(got["target"].unique()) <= {0.0, 1.0}
    assert (got["weight"] == got["target"] / 2).all()


def test_mlflow_models_serve_answers_with_signals(store: Store, sample_bars, tmp_path) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": store.tracker.tracking_uri,
    }
    log = (tmp_path / "serve.log").open("wb")
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@{CHAMPION}"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ping(base, proc, tmp_path / "serve.log")
        frame = _recent_bars(sample_bars, "2008-03-31", 70)
        body = {
            "dataframe_split": json.loads(
                frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S")).to_json(
                    orient="split", index=False
                )
            )
        }
        answer = _post(f"{base}/invocations", body)
        bad = _post(
            f"{base}/invocations", {"dataframe_split": {"columns": ["time"], "data": [[1]]}}
        )
    finally:
        stop(proc)
    got = pd.DataFrame(answer["predictions"])
    expected = signal_records(load_bundle(store.results[1].bundle_dir), frame)

    assert list(got.columns) == ["time", "symbol", "p_up", "target", "weight"]
    assert len(got) == len(expected) > 0
    assert (got["symbol"] == expected["symbol"]).all()
    assert (pd.to_datetime(got["time"]) == expected["time"]).all()
    for col in ("p_up", "target", "weight"):
        assert got[col].to_numpy() == pytest.approx(expected[col].to_numpy(), abs=1e-12)
    assert bad["status"] == 400 and "symbol" in bad["body"]


def _wait_ping(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlflow models serve did not come up on {base}:\n{log.read_text()}")
        time.sleep(0.5)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode()}


def _cli(store: Store, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlalgo", *args, "--mlflow-config", str(store.mlflow_yaml)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=store.root, timeout=300)


def test_promoting_the_champion_again_is_a_logged_rejection(store: Store) -> None:
    out = _cli(
        store,
        "promote",
        "--model",
        NAME,
        "--challenger",
        "2",
        "--pipeline",
        str(store.pipeline_yaml),
    )

    assert out.returncode == 1, out.stderr
    assert "REJECT: v2 is already the champion" in out.stdout
    assert str(store.client().get_registered_model(NAME).aliases[CHAMPION]) == "2"


def test_rollback_moves_champion_back_and_keeps_the_demoted_version_out(store: Store) -> None:
    out = _cli(store, "rollback", "--model", NAME, "--reason", "live drawdown")
    client = store.client()

    assert out.returncode == 0, out.stderr
    assert "ROLLBACK: @champion v2 -> v1: live drawdown" in out.stdout
    assert str(client.get_registered_model(NAME).aliases[CHAMPION]) == "1"
    assert client.get_model_version(NAME, "2").tags["mlalgo.rolled_back"] == "live drawdown"

    again = _cli(
        store,
        "promote",
        "--model",
        NAME,
        "--challenger",
        "2",
        "--pipeline",
        str(store.pipeline_yaml),
    )
    assert again.returncode == 1 and "was rolled back (live drawdown)" in again.stdout

    nothing = _cli(store, "rollback", "--model", NAME)
    assert nothing.returncode == 2
    assert "v1 replaced no earlier champion" in nothing.stderr
    assert str(client.get_registered_model(NAME).aliases[CHAMPION]) == "1"


def test_an_unknown_model_or_alias_says_what_the_registry_holds(store: Store) -> None:
    out = _cli(store, "rollback", "--model", "nope")
    with pytest.raises(BundleError, match=r"registered model 'sig' has versions \[1, 2\]"):
        resolve_bundle(f"models:/{NAME}@staging", store.tracker, store.root / "cache")

    assert out.returncode == 2 and "no @champion to roll back" in out.stderr


def test_the_gate_needs_a_hold_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"promote: needs export\.holdout_bars > 0"):
        load_pipeline(RETRAIN_YAML, ["stages.export.holdout_bars=0"])
    shutil.rmtree(tmp_path, ignore_errors=True)
