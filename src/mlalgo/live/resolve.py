"""``models:/NAME@alias`` to a verified local bundle, without MLflow in the live process.

The registry lookup and download run in a short-lived child process (``python -m
mlalgo.live.resolve``) that imports MLflow, verifies the bundle against the registry's
manifest tag and prints its folder; the executor then loads that folder, which checks every
hash again. The same call, repeated, is the hot-reload check: a new version behind the alias
gives a new folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlalgo.bundle import Bundle, BundleError, load_bundle

CACHE = Path(".mlalgo/bundles")


def is_registry_uri(model: str) -> bool:
    return model.startswith("models:/")


def resolve(
    model: str,
    *,
    mlflow_config: Path = Path("mlflow.yaml"),
    cache: Path = CACHE,
    timeout: float = 120.0,
) -> Bundle:
    """The bundle a path or a ``models:/`` URI names, verified."""
    if not is_registry_uri(model):
        return load_bundle(model, live=True)
    cmd = [sys.executable, "-m", "mlalgo.live.resolve", model, str(mlflow_config), str(cache)]
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise BundleError(f"{model}: the registry did not answer within {timeout:g} s") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise BundleError(f"{model}: {message.removeprefix('error: ')}")
    path = json.loads(done.stdout.strip().splitlines()[-1])["path"]
    return load_bundle(path, live=True)


def _main(model: str, mlflow_config: str, cache: str) -> int:
    from mlalgo.config import ConfigError, load_mlflow_config
    from mlalgo.registry import resolve_bundle
    from mlalgo.tracking import Tracker

    config = Path(mlflow_config)
    try:
        tracker = Tracker(load_mlflow_config(config), root=config.parent)
        path = resolve_bundle(model, tracker, Path(cache))
    except (BundleError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the registry's own errors: one line for the parent
        print(f"error: {type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    print(json.dumps({"path": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:4]))
