"""The only module that talks to MLflow.

It uses an explicit ``MlflowClient`` (no global active run, no autolog), so the pipeline decides
exactly what a run holds. A local SQLite tracking URI keeps its artifacts in ``mlartifacts/``
next to the database file, wherever the command was run from.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mlalgo.config import MlflowConfig

_BATCH = 100  # MLflow's per-request limit for params and tags
# MLflow 3 tags an experiment's kind; these experiments train models (not GenAI apps).
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def resolve_tracking_uri(uri: str, root: str | Path = ".") -> str:
    """Make a relative ``sqlite:///file.db`` absolute against ``root`` (the project folder)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((Path(root) / uri[len(prefix) :]).resolve())
    return uri


def artifact_location(uri: str) -> str | None:
    """For a local SQLite store: ``<db folder>/mlartifacts``; otherwise the server decides."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        return (Path(uri[len(prefix) :]).parent / "mlartifacts").resolve().as_uri()
    return None


class Tracker:
    """One MLflow experiment; :meth:`run` opens a run and closes it FINISHED or FAILED."""

    def __init__(self, cfg: MlflowConfig, root: str | Path = ".") -> None:
        self.cfg = cfg
        self.root = Path(root)

    @property
    def tracking_uri(self) -> str:
        return resolve_tracking_uri(self.cfg.tracking_uri, self.root)

    def client(self) -> MlflowClient:
        # The registry explicitly too: left unset, MlflowClient takes it from the global
        # fluent URI, not from tracking_uri.
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, client: MlflowClient) -> str:
        exp = client.get_experiment_by_name(self.cfg.experiment)
        if exp is not None:
            return exp.experiment_id
        return client.create_experiment(
            self.cfg.experiment,
            artifact_location=artifact_location(self.tracking_uri),
            tags={EXPERIMENT_KIND: MODEL_TRAINING},
        )

    @contextmanager
    def run(self, run_name: str, tags: Mapping[str, str]) -> Iterator[RunLog]:
        log = self.start(run_name, tags)
        try:
            yield log
        except BaseException:
            log.end("FAILED")
            raise
        log.end("FINISHED")

    def start(self, run_name: str, tags: Mapping[str, str], parent: str | None = None) -> RunLog:
        """Open a run (nested under ``parent`` when given); the caller ends it with a status."""
        client = self.client()
        tags = {**tags, "mlflow.parentRunId": parent} if parent else dict(tags)
        run = client.create_run(self.experiment_id(client), run_name=run_name, tags=tags)
        return RunLog(client, run.info.run_id, run.info.experiment_id)

    def resume(self, run_id: str) -> RunLog | None:
        """Reopen an existing run (a resumed study's parent); None if this store lacks it."""
        client = self.client()
        try:
            run = client.get_run(run_id)
        except Exception:  # MlflowException: RESOURCE_DOES_NOT_EXIST, or another store's id
            return None
        client.update_run(run_id, status="RUNNING")
        return RunLog(client, run_id, run.info.experiment_id)


class RunLog:
    """What a pipeline may write into its run."""

    def __init__(self, client: MlflowClient, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    def end(self, status: str) -> None:
        """FINISHED, FAILED or KILLED (a pruned trial: stopped on purpose, not broken)."""
        self.client.set_terminated(self.run_id, status=status)

    def series(self, name: str, values: list[float]) -> None:
        """One metric over steps (a trial's per-fold scores): step i holds values[i]."""
        items = [Metric(name, float(v), 0, i) for i, v in enumerate(values) if math.isfinite(v)]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _BATCH])

    def params(self, params: Mapping[str, str]) -> None:
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def tags(self, tags: Mapping[str, str]) -> None:
        items = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + _BATCH])

    def metrics(self, metrics: Mapping[str, float], step: int = 0) -> list[str]:
        """Log the finite metrics; return the names of the others (NaN/inf are not comparable)."""
        finite = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        skipped = sorted(set(metrics) - set(finite))
        items = [Metric(k, v, 0, step) for k, v in finite.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _BATCH])
        if skipped:
            self.tags({"mlalgo.nonfinite_metrics": ",".join(skipped)})
        return skipped

    def text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def dict(self, data: dict[str, Any], path: str) -> None:
        self.client.log_dict(self.run_id, data, path)

    def figure(self, fig: Figure, path: str) -> None:
        self.client.log_figure(self.run_id, fig, path)

    def folder(self, folder: str | Path, path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), path)

    def frame_csv(self, frame: Any, path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(path).name
            frame.to_csv(target, index=False)
            parent = str(Path(path).parent)
            self.client.log_artifact(self.run_id, str(target), None if parent == "." else parent)


def git_info(root: str | Path = ".") -> dict[str, str]:
    """Commit and dirty flag of the checkout, or nothing outside a git work tree."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    sha = git("rev-parse", "HEAD")
    if not sha:
        return {}
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"mlalgo.git_sha": sha, "mlflow.source.git.commit": sha, "mlalgo.git_dirty": str(dirty)}
