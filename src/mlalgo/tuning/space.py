"""The pipeline YAML's ``tune.space`` turned into Optuna suggestions, keyed by config path."""

from __future__ import annotations

from typing import Any

import optuna

from mlalgo.config import ParamRange


def suggest(trial: optuna.Trial, space: dict[str, ParamRange]) -> dict[str, Any]:
    """One value per dimension; the Optuna parameter name is the config path it sets."""
    values: dict[str, Any] = {}
    for key, rng in space.items():
        if rng.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(rng.choices or ()))
        elif rng.type == "int":
            step = int(rng.step) if rng.step else 1
            values[key] = trial.suggest_int(
                key, int(rng.low or 0), int(rng.high or 0), step=step, log=rng.log
            )
        else:
            values[key] = trial.suggest_float(
                key, float(rng.low or 0), float(rng.high or 0), step=rng.step, log=rng.log
            )
    return values
