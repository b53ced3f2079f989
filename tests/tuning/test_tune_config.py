"""The search space and hold-out settings are checked when the pipeline loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlalgo.config import ConfigError, load_pipeline, with_values

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "pipelines" / "train.yaml"


def write(tmp_path: Path, space: dict | None = None, **tune: object) -> Path:
    raw = yaml.safe_load(TRAIN.read_text())
    if space is not None:
        raw["tune"]["space"] = space
    raw["tune"].update(tune)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_pipeline_declares_a_search_space() -> None:
    cfg = load_pipeline(TRAIN)
    assert cfg.tune.objective == "sharpe"
    assert "stages.train.num_leaves" in cfg.tune.space
    assert cfg.tune.space["stages.train.learning_rate"].log


def test_with_values_applies_dotted_paths_and_validates() -> None:
    cfg = load_pipeline(TRAIN)
    out = with_values(cfg, {"stages.train.num_leaves": 31, "stages.features.0.n": 7}, "trial 3")
    assert out.stages.train.num_leaves == 31
    assert out.stages.features[0].n == 7  # type: ignore[union-attr]
    assert cfg.stages.train.num_leaves == 15  # the original is untouched
    with pytest.raises(ConfigError, match=r"trial 3: stages\.train\.num_leaves"):
        with_values(cfg, {"stages.train.num_leaves": 1}, "trial 3")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"stages.train.num_leavs": {"type": "int", "low": 4, "high": 8}},
            r"tune.space.stages.train.num_leavs: 4 is not a valid value.*did you mean num_leaves",
        ),
        (
            {"stages.fetch.start": {"type": "categorical", "choices": ["2001-01-01"]}},
            r"tune.space.stages.fetch.start: cannot be tuned",
        ),
        (
            {"seed": {"type": "int", "low": 1, "high": 9}},
            r"tune.space.seed: cannot be tuned",
        ),
        (
            {"stages.train.num_leaves": {"type": "int", "low": 1, "high": 8}},
            r"num_leaves: 1 is not a valid value.*greater than or equal to 2",
        ),
        (
            {"stages.train.subsample": {"type": "float", "low": 0.5, "high": 1.5}},
            r"tune.space.stages.train.subsample: 1.5 is not a valid value",
        ),
        (
            {"stages.train.model": {"type": "categorical", "choices": ["lightgbm", "xgboost"]}},
            r"tune.space.stages.train.model: 'xgboost' is not a valid value",
        ),
        (
            {"stages.features.20.n": {"type": "int", "low": 5, "high": 9}},
            r"expected a list index 0..7",
        ),
    ],
)
def test_bad_space_keys_name_file_key_and_expectation(
    tmp_path: Path, space: dict, message: str
) -> None:
    path = write(tmp_path, space)
    with pytest.raises(ConfigError, match=message) as err:
        load_pipeline(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("rng", "message"),
    [
        ({"type": "int", "low": 8, "high": 4}, "low .8.0. must be below high"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log range needs low > 0"),
        ({"type": "int", "low": 2.5, "high": 8}, "whole-number"),
        ({"type": "categorical"}, "needs choices"),
        ({"type": "categorical", "choices": [1], "low": 0}, "takes only choices"),
        ({"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}, "cannot be combined"),
        ({"type": "float", "low": 0.1}, "needs low and high"),
    ],
)
def test_bad_ranges_are_rejected(tmp_path: Path, rng: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline(write(tmp_path, {"stages.train.num_leaves": rng}))


def test_holdout_is_given_one_way(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not both \(holdout_bars: null to use the date"):
        load_pipeline(write(tmp_path, holdout_bars=100, holdout_start="2011-01-03"))
    cfg = load_pipeline(write(tmp_path, holdout_bars=None, holdout_start="2011-01-03"))
    assert str(cfg.tune.holdout_start) == "2011-01-03"
    with pytest.raises(ConfigError, match="needs holdout_bars or holdout_start"):
        load_pipeline(write(tmp_path, holdout_bars=None))


def test_unknown_tune_key_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tune.prunner: unknown key \(did you mean pruner\?\)"):
        load_pipeline(write(tmp_path, prunner="median"))
