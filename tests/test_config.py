"""Config is typed and frozen; every mistake is refused at load with file, key path and fix."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from mlalgo.config import (
    ConfigError,
    MlflowConfig,
    PipelineConfig,
    load_mlflow_config,
    load_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
TRAIN_YAML = ROOT / "pipelines" / "train.yaml"


def write_variant(tmp_path: Path, edit) -> Path:
    """Copy of the default pipeline with one edit applied to its parsed YAML."""
    raw = yaml.safe_load(TRAIN_YAML.read_text())
    edit(raw)
    path = tmp_path / "pipelines" / "train.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_default_pipeline_loads_into_frozen_typed_objects() -> None:
    cfg = load_pipeline(TRAIN_YAML)

    assert cfg.stages.fetch.symbols == ("AAPL", "IBM", "MSFT")
    assert cfg.stages.train.num_leaves == 15
    assert cfg.feature_spec.names[0] == "rsi_14"
    with pytest.raises(pydantic.ValidationError):
        cfg.stages.train.num_leaves = 31  # type: ignore[misc]


def test_unknown_key_names_file_key_path_and_the_likely_intended_key(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda r: r["stages"]["train"].update(num_leavs=31))

    with pytest.raises(ConfigError) as err:
        load_pipeline(path)

    assert (
        str(err.value) == f"{path}: stages.train.num_leavs: unknown key (did you mean num_leaves?)"
    )


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda r: r["stages"]["fetch"].update(zzz=1))

    with pytest.raises(ConfigError, match=r"stages\.fetch\.zzz: unknown key \(expected one of: "):
        load_pipeline(path)


def test_wrong_type_names_key_and_expectation(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda r: r["stages"]["backtest"].update(retrain_every="often"))

    with pytest.raises(ConfigError) as err:
        load_pipeline(path)

    msg = str(err.value)
    assert msg.startswith(f"{path}: stages.backtest.retrain_every: ")
    assert "valid integer" in msg and "'often'" in msg


def test_feature_errors_point_into_the_feature_list_without_internal_tags(tmp_path: Path) -> None:
    def edit(raw):
        raw["stages"]["features"][0] = {"feature": "rsi", "n": 14, "window": 3}

    path = write_variant(tmp_path, edit)

    with pytest.raises(ConfigError) as err:
        load_pipeline(path)

    assert str(err.value).startswith(f"{path}: stages.features.0.window: unknown key")


def test_unknown_feature_kind_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda r: r["stages"]["features"].append({"feature": "rsx"}))

    with pytest.raises(ConfigError) as err:
        load_pipeline(path)

    assert "stages.features.8" in str(err.value)
    assert "'rsi'" in str(err.value) and "'ar1_zscore'" in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def edit(raw):
        raw["stages"]["train"]["num_leavs"] = 3
        raw["stages"]["label"]["horizon"] = 0

    path = write_variant(tmp_path, edit)

    with pytest.raises(ConfigError) as err:
        load_pipeline(path)

    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert any("stages.label.horizon" in line and "greater than 0" in line for line in lines)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = write_variant(tmp_path, lambda r: r["stages"].pop("features"))

    with pytest.raises(ConfigError, match=r"stages\.features: required key is missing"):
        load_pipeline(path)


def test_broken_yaml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [unclosed\n")

    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_pipeline(tmp_path / "absent.yaml")


def test_set_overrides_typed_values_and_list_items() -> None:
    cfg = load_pipeline(
        TRAIN_YAML,
        [
            "stages.train.num_leaves=31",
            "stages.features.0.n=21",
            "stages.fetch.symbols=[AAPL]",
            "stages.backtest.policy.allow_short=true",
        ],
    )

    assert cfg.stages.train.num_leaves == 31
    assert cfg.feature_spec.names[0] == "rsi_21"
    assert cfg.stages.fetch.symbols == ("AAPL",)
    assert cfg.stages.backtest.policy.allow_short is True


def test_set_errors_are_attributed_to_the_override() -> None:
    with pytest.raises(ConfigError) as err:
        load_pipeline(TRAIN_YAML, ["stages.train.num_leavs=3"])
    assert str(err.value) == (
        "--set stages.train.num_leavs=3: stages.train.num_leavs: unknown key "
        "(did you mean num_leaves?)"
    )
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        load_pipeline(TRAIN_YAML, ["stages.train.num_leaves"])
    with pytest.raises(ConfigError, match=r"expected a list index 0\.\.7"):
        load_pipeline(TRAIN_YAML, ["stages.features.99.n=3"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_pipeline(TRAIN_YAML, ["seed.x=3"])


def test_config_hash_is_stable_and_tracks_every_value() -> None:
    a, b = load_pipeline(TRAIN_YAML), load_pipeline(TRAIN_YAML)
    c = load_pipeline(TRAIN_YAML, ["stages.backtest.costs.slippage_bps=3"])

    assert a.hash == b.hash
    assert a.hash != c.hash
    assert len(a.hash) == 64


def test_flat_params_are_key_paths_with_string_values() -> None:
    flat = load_pipeline(TRAIN_YAML).flat()

    assert flat["stages.train.num_leaves"] == "15"
    assert flat["stages.features.0.feature"] == "rsi"
    assert flat["stages.validate.on_error"] == "fail"
    assert flat["stages.fetch.start"] == "2000-03-01"


def test_a_pipeline_round_trips_through_its_own_dump() -> None:
    cfg = load_pipeline(TRAIN_YAML)

    again = PipelineConfig.model_validate(cfg.to_dict())

    assert again == cfg and again.hash == cfg.hash


def test_mlflow_config_defaults_file_and_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load_mlflow_config(tmp_path / "absent.yaml") == MlflowConfig()

    path = tmp_path / "mlflow.yaml"
    path.write_text("tracking_uri: sqlite:///x.db\nexperiment: e\nregistered_model: m\n")
    assert load_mlflow_config(path).experiment == "e"
    assert load_mlflow_config(path).tracking_uri == "sqlite:///x.db"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5055")
    assert load_mlflow_config(path).tracking_uri == "http://127.0.0.1:5055"

    path.write_text("experimnt: e\n")
    with pytest.raises(ConfigError, match=r"experimnt: unknown key \(did you mean experiment\?\)"):
        load_mlflow_config(path)


def test_project_mlflow_yaml_uses_an_embedded_sqlite_store() -> None:
    cfg = MlflowConfig.model_validate(yaml.safe_load((ROOT / "mlflow.yaml").read_text()))

    assert cfg.tracking_uri.startswith("sqlite:///")
    assert cfg.registered_model
