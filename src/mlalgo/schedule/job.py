"""A scheduled pipeline, read from its YAML, and the command that runs it."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlalgo.schedule.config import ScheduleConfig

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Job:
    """One pipeline on a schedule. ``name`` (the pipeline's ``name:``) keys its lock, its logs
    and its history, so it must be a plain file name."""

    name: str
    path: Path
    schedule: ScheduleConfig

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"pipeline name {self.name!r} names the schedule's lock and log folder; "
                "use letters, digits, '.', '_' and '-' only"
            )


Command = Callable[[Job, Path], list[str]]
"""``command(job, summary_path) -> argv``: how a job's process is started."""


def mlalgo_run_command(mlflow_config: Path) -> Command:
    """``python -m mlalgo run PIPELINE ...`` with this interpreter, so the job runs in the same
    environment as the scheduler whatever is on PATH."""

    def command(job: Job, summary_path: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlalgo",
            "run",
            str(job.path),
            "--mlflow-config",
            str(mlflow_config),
            "--summary-json",
            str(summary_path),
        ]

    return command


def load_job(path: Path, *, require_cron: bool = True) -> Job:
    """The job for a pipeline file, with every problem as ``ConfigError("file: key: message")``.

    The whole pipeline is validated now, so a broken file fails at start-up, not at 22:00.
    """
    from mlalgo.config import ConfigError, load_pipeline

    cfg = load_pipeline(path)
    if require_cron and cfg.schedule.cron is None:
        raise ConfigError(
            f'{path}: schedule.cron: required to schedule this pipeline (e.g. cron: "0 22 * * 1-5"'
            "); --once runs it now without one"
        )
    try:
        return Job(name=cfg.name, path=path.absolute(), schedule=cfg.schedule)
    except ValueError as exc:
        raise ConfigError(f"{path}: name: {exc}") from None
