"""The MLflow model registry: bundles as versions of a registered model, moved by aliases.

A version is the bundle logged as a pyfunc model (:mod:`mlalgo.serving`) and tagged with the
sha256 of its manifest, which hashes every file in it. Resolving ``models:/NAME@champion`` gives
a local bundle folder that is verified twice: its own manifest, and that manifest against the
tag written when it was registered, so an artifact store edited behind the registry's back is
refused. Aliases only: the registry's stages are deprecated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlalgo import __version__
from mlalgo.bundle import MANIFEST_FILE, BundleError, RegistryError, load_bundle
from mlalgo.tracking import Tracker

CHAMPION = "champion"
PYFUNC_NAME = "signal_model"
MANIFEST_TAG = "mlalgo.manifest_sha256"
PREVIOUS_TAG = "mlalgo.previous_champion"
_ENTRY = Path(__file__).with_name("serving") / "entry.py"
_REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas", "numba", "pydantic", "pyyaml")


@dataclass(frozen=True)
class ModelRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        rest = uri.removeprefix("models:/")
        if rest == uri or not rest:
            raise RegistryError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return cls(name, alias=alias)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise RegistryError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return cls(name, version=version)

    def __str__(self) -> str:
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


def register_bundle(
    tracker: Tracker, run_id: str, bundle_dir: Path, name: str, alias: str | None
) -> ModelVersion:
    """Log ``bundle_dir`` into run ``run_id`` as a pyfunc model, register it as a new version of
    ``name`` and point ``alias`` at it."""
    import mlflow
    from mlflow.models import infer_signature

    from mlalgo.scoring import example_frame, signal_records

    bundle = load_bundle(bundle_dir)
    example = example_frame(bundle.input_example)
    signature = infer_signature(example, signal_records(bundle, example))
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")  # offline machines
    with fluent_store(tracker.tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(_ENTRY),
            artifacts={"bundle": str(bundle_dir)},
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=requirements(),
            metadata={"mlalgo_bundle_format": bundle.manifest["format_version"]},
        )
    client = tracker.client()
    version = str(info.registered_model_version)
    for key, value in version_tags(bundle_dir, bundle.manifest).items():
        client.set_model_version_tag(name, version, key, value)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return client.get_model_version(name, version)


@contextmanager
def fluent_store(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``log_model`` has no client form) at ``uri`` for a block.

    ``mlflow.set_tracking_uri`` and ``set_registry_uri`` also export ``MLFLOW_TRACKING_URI`` and
    ``MLFLOW_REGISTRY_URI`` to the environment, which every later child process and every later
    ``load_mlflow_config`` would inherit; both globals and both variables are restored.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in names}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def version_tags(bundle_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    training = manifest.get("training_range") or {}
    return {
        MANIFEST_TAG: _sha256(bundle_dir / MANIFEST_FILE),
        "mlalgo.bundle": str(bundle_dir),
        "mlalgo.training_end": str(training.get("label_end", training.get("end", ""))),
        "mlalgo.holdout_start": str(manifest.get("holdout_start") or ""),
        "mlalgo.data_hash": str(manifest.get("data_hash", "")),
        "mlalgo.config_hash": str(manifest.get("config_hash", "")),
    }


def requirements() -> list[str]:
    """What a server needs besides mlalgo itself (``--env-manager local`` uses this env)."""
    out = [f"mlalgo=={__version__}"]
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def get_version(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    """The version a reference names, or a :class:`RegistryError` listing what exists."""
    try:
        if ref.alias:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        _raise_unless_missing(exc)
        raise RegistryError(f"{ref}: {describe(client, ref.name)}") from None


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``; None only when the registry says there is none."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        _raise_unless_missing(exc)
        return None


def describe(client: MlflowClient, name: str) -> str:
    """What the registry holds under ``name``, for error messages."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        _raise_unless_missing(exc)
        return f"no registered model {name!r}; run a pipeline with stages.register.enabled"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = ", ".join(f"@{a}={v}" for a, v in sorted(model.aliases.items())) or "no aliases"
    return f"registered model {name!r} has versions {versions or 'none'} ({aliases})"


_MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def _raise_unless_missing(exc: MlflowException) -> None:
    """An answer that something does not exist is a fact about the registry; anything else (a
    server that is down, a timeout) is not, and must never read as "no model" or "no champion"."""
    if exc.error_code not in _MISSING:
        raise RegistryError(f"the registry did not answer: {exc.message}") from None


def download_bundle(tracker: Tracker, version: ModelVersion, cache: Path) -> Path:
    """The version's bundle as a local folder under ``cache``, verified against the registry.

    Downloaded once per version into ``cache/<name>/<version>`` (atomically: a temporary
    folder renamed into place); every call re-verifies what is there.
    """
    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    target = Path(cache) / version.name / str(version.version)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
        try:
            where = tracker.client().get_model_version_download_uri(
                version.name, str(version.version)
            )
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=where, dst_path=str(tmp), tracking_uri=tracker.tracking_uri
            )
            # pyfunc keeps an artifact folder under its own name (the bundle's version number)
            found = [m.parent for m in (Path(local) / "artifacts").glob(f"*/{MANIFEST_FILE}")]
            if len(found) != 1:
                raise BundleError(f"models:/{version.name}/{version.version}: holds no bundle")
            found = found[0]
            try:
                os.rename(found, target)
            except OSError:
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    expected = (version.tags or {}).get(MANIFEST_TAG)
    if expected is None or _sha256(target / MANIFEST_FILE) != expected:
        raise BundleError(
            f"{target / MANIFEST_FILE}: sha256 differs from the registry's {MANIFEST_TAG} of "
            f"models:/{version.name}/{version.version}; refusing a bundle the registry did not "
            "record"
        )
    load_bundle(target)
    return target


def resolve_bundle(uri: str | Path, tracker: Tracker, cache: Path) -> Path:
    """A bundle folder from a path or a ``models:/`` URI, verified."""
    if not str(uri).startswith("models:/"):
        load_bundle(uri)
        return Path(uri)
    client = tracker.client()
    return download_bundle(tracker, get_version(client, ModelRef.parse(str(uri))), cache)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing; this folder is not a bundle") from None
