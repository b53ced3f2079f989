"""The signal-model bundle: one folder holding everything the live side needs, verifiable.

Layout of ``models/<name>/<version>/``::

    model.txt           LightGBM booster in its native text format (never a pickle)
    features.json       the FeatureSpec, canonical JSON
    policy.json         the decision policy (thresholds, Kelly and volatility sizing) and the
                        execution it was judged under (fills, cost model, sizing, risk limits)
    input_example.json  real bars the model was exported with: enough history for one signal
    manifest.json       format version, sha256 of every file above, training and hold-out
                        ranges, metrics, MLflow run id, config/data/feature hashes, label

Loading verifies every hash before parsing anything and refuses missing, extra or altered files,
so what trades is exactly what was trained and reported. Rows of features are evaluated by
:class:`~mlalgo.model.compiled.CompiledModel` (numba, bit-identical to LightGBM, 13x faster per
row than ``Booster.predict``); the live executor's one row per bar by
:class:`~mlalgo.model.row.RowModel`, which answers with LightGBM's own C library from the
first bar (it starts in milliseconds where numba takes a second) and with the compiled
evaluator once that has loaded in the background. Each is built when first needed, and this
module imports no LightGBM package, numba, pandas, MLflow, Optuna or scikit-learn: the live
executor loads bundles through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlalgo.config import ExecutionConfig
from mlalgo.features.spec import FeatureSpec
from mlalgo.model.lgbm_text import feature_names
from mlalgo.policy import DecisionPolicy, decide

if TYPE_CHECKING:
    from mlalgo.model.compiled import CompiledModel
    from mlalgo.model.row import RowModel

FORMAT_VERSION = 2
MODEL_FILE = "model.txt"
SPEC_FILE = "features.json"
POLICY_FILE = "policy.json"
EXAMPLE_FILE = "input_example.json"
MANIFEST_FILE = "manifest.json"
LISTED = (MODEL_FILE, SPEC_FILE, POLICY_FILE, EXAMPLE_FILE)
BAR_COLUMNS = ("time", "symbol", "open", "high", "low", "close", "volume")


class BundleError(ValueError):
    """A bundle that must not be loaded; the message names the file at fault."""


class RegistryError(BundleError):
    """A ``models:/`` reference that names no bundle; the message says what the registry has."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    spec: FeatureSpec
    policy: DecisionPolicy
    execution: ExecutionConfig
    model_text: str = field(repr=False)  # LightGBM's text format, as in model.txt
    input_example: list[dict[str, Any]] = field(repr=False)  # bar records: time, symbol, OHLCV

    @cached_property
    def model(self) -> CompiledModel:
        """The numba evaluator, for rows of features (batch scoring, the pyfunc model)."""
        from mlalgo.model.compiled import CompiledModel

        return CompiledModel.from_text(self.model_text)

    @cached_property
    def row_model(self) -> RowModel:
        """The per-bar evaluator of the live side (:class:`~mlalgo.model.row.RowModel`)."""
        from mlalgo.model.row import RowModel

        return RowModel(self.model_text, tuple(self.feature_names))

    @property
    def feature_names(self) -> list[str]:
        return self.spec.names

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def symbols(self) -> list[str]:
        """What it was trained on; each gets ``1 / len(symbols)`` of the account."""
        return list(self.manifest.get("symbols") or [])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(up) for rows of features in ``feature_names`` order."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected rows of {len(self.feature_names)} features "
                f"({', '.join(self.feature_names)}), got shape {x.shape}"
            )
        return self.model.predict(x)

    def predict_one(self, row: np.ndarray) -> float:
        """P(up) for one row of features: the live per-bar path, without allocations."""
        return self.row_model.predict_one(row)

    def signal(self, features: np.ndarray, volatility: np.ndarray | None = None) -> np.ndarray:
        """Target exposure per row, through the same ``decide`` as the backtest (``volatility``
        only for a policy with ``vol_target``)."""
        return decide(self.predict_proba(features), self.policy, volatility)


def export_bundle(
    root: str | Path,
    name: str,
    *,
    model_text: str,
    spec: FeatureSpec,
    policy: DecisionPolicy,
    execution: ExecutionConfig,
    input_example: list[dict[str, Any]],
    info: dict[str, Any],
) -> Path:
    """Write a new version under ``root/name`` atomically and return its folder.

    Files are written into a temporary sibling folder and renamed into place, so a crash leaves
    either a complete bundle or none; a concurrent export simply takes the next version number.
    """
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=base))
    try:
        files = {
            MODEL_FILE: model_text.encode(),
            SPEC_FILE: spec.to_json().encode(),
            POLICY_FILE: _policy_json(policy, execution).encode(),
            EXAMPLE_FILE: json.dumps(_example(input_example), indent=1).encode(),
        }
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "files": {f: _sha256(d) for f, d in sorted(files.items())},
            "feature_names": spec.names,
            "feature_spec_hash": spec.hash,
            **info,
        }
        while True:
            version = _next_version(base)
            manifest["version"] = version
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            _fsync_dir_files(tmp)
            try:
                os.rename(tmp, base / str(version))
            except OSError:
                if (base / str(version)).exists():
                    continue
                raise
            return base / str(version)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_bundle(path: str | Path, *, live: bool = False) -> Bundle:
    """Verify and load a bundle; raise :class:`BundleError` naming the first problem.

    The evaluator that will be used is built now, so a model either evaluator refuses is
    refused here and the first prediction pays nothing: the numba one by default, the per-bar
    one with ``live=True`` (what the live executor loads; numba is not imported then).
    """
    path = Path(path)
    manifest = _read_manifest(path)
    expected = manifest.get("files")
    if not isinstance(expected, dict) or set(expected) != set(LISTED):
        raise BundleError(f"{path / MANIFEST_FILE}: 'files' must list {', '.join(LISTED)}")
    present = {p.name for p in path.iterdir()} - {MANIFEST_FILE}
    extra = sorted(present - set(expected))
    if extra:
        raise BundleError(
            f"{path}: unexpected file(s) {', '.join(extra)} not in the manifest; "
            "a bundle holds only what its manifest lists"
        )
    data: dict[str, bytes] = {}
    for fname, digest in sorted(expected.items()):
        fpath = path / fname
        if not fpath.is_file():
            raise BundleError(f"{fpath}: missing; the manifest lists it")
        blob = fpath.read_bytes()
        if _sha256(blob) != digest:
            raise BundleError(
                f"{fpath}: sha256 does not match the manifest; the file was altered "
                "after export, so the bundle is refused"
            )
        data[fname] = blob
    try:
        spec = FeatureSpec.from_json(data[SPEC_FILE].decode())
        policies = json.loads(data[POLICY_FILE])
        policy = DecisionPolicy.model_validate(policies["decision"])
        execution = ExecutionConfig.model_validate(policies["execution"])
        example = _example(json.loads(data[EXAMPLE_FILE]))
        text = data[MODEL_FILE].decode()
        names = feature_names(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: a listed file does not parse: {exc}") from None
    _check_features(path, manifest, spec, names)
    bundle = Bundle(path, manifest, spec, policy, execution, text, example)
    try:
        _ = bundle.row_model if live else bundle.model
    except ValueError as exc:
        raise BundleError(f"{path / MODEL_FILE}: {exc}") from None
    return bundle


def _policy_json(policy: DecisionPolicy, execution: ExecutionConfig) -> str:
    doc = {
        "decision": policy.model_dump(mode="json"),
        "execution": execution.model_dump(mode="json"),
    }
    return json.dumps(doc, indent=1, sort_keys=True)


def _example(rows: Any) -> list[dict[str, Any]]:
    """Bar records with exactly the bar columns; a bundle's example must be servable as is."""
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{EXAMPLE_FILE}: expected a non-empty list of bar records")
    out = []
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(BAR_COLUMNS):
            raise ValueError(f"{EXAMPLE_FILE}: each record needs exactly {', '.join(BAR_COLUMNS)}")
        out.append({k: row[k] for k in BAR_COLUMNS})
    return out


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle folder")
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise BundleError(f"{mpath}: missing; this folder is not a bundle") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath}: expected a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this mlalgo reads {FORMAT_VERSION}); re-export the model"
        )
    return manifest


def _check_features(
    path: Path, manifest: dict[str, Any], spec: FeatureSpec, model_names: tuple[str, ...]
) -> None:
    names = spec.names
    if manifest.get("feature_names") != names:
        raise BundleError(f"{path / MANIFEST_FILE}: feature_names differ from {SPEC_FILE}")
    if list(model_names) != names:
        raise BundleError(
            f"{path / MODEL_FILE}: the model expects features {list(model_names)} but "
            f"{SPEC_FILE} defines {names}"
        )


def _next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir_files(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
