"""Jobs whose commands are tiny real Python processes, and a scheduler that never really sleeps."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlalgo.schedule import Job, ScheduleConfig, Scheduler

CommandFn = Callable[[Job, Path], list[str]]


def _python(code: str, *args: object) -> CommandFn:
    return lambda job, summary: [sys.executable, "-c", code, str(summary), *map(str, args)]


@pytest.fixture
def python() -> Callable[..., CommandFn]:
    """``python(code, *args)``: a job command running ``code`` in a fresh interpreter, with
    ``sys.argv[1]`` the summary path and ``args`` after it."""
    return _python


@pytest.fixture
def make_job() -> Callable[..., Job]:
    """``make_job(name="retrain", **schedule)``: weekdays at 22:00 UTC unless told otherwise."""

    def make(name: str = "retrain", **schedule: object) -> Job:
        schedule.setdefault("cron", "0 22 * * 1-5")
        return Job(name, Path(f"pipelines/{name}.yaml"), ScheduleConfig.model_validate(schedule))

    return make


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_scheduler(tmp_path: Path, sleeps: list[float]) -> Callable[..., Scheduler]:
    """``make_scheduler(jobs, command)``: state in ``tmp_path/state``, retry delays appended to
    ``sleeps`` instead of waited out. A second call is the same scheduler restarted."""

    def make(jobs: list[Job], command: CommandFn) -> Scheduler:
        return Scheduler(
            jobs,
            tmp_path / "state",
            root=tmp_path,
            mlflow_config=tmp_path / "mlflow.yaml",
            sleep=sleeps.append,
            command=command,
        )

    return make
