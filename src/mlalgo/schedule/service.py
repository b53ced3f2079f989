"""``mlalgo schedule``: load the pipelines, then serve them (or run each once) until signalled."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from mlalgo.schedule.history import Status
from mlalgo.schedule.job import Command, Job, load_job
from mlalgo.schedule.scheduler import Scheduler

log = logging.getLogger("mlalgo.schedule")


def run_scheduler(
    pipelines: list[Path],
    *,
    state_dir: Path,
    root: Path,
    mlflow_config: Path,
    once: bool,
    command: Command | None = None,
) -> int:
    """Serve the pipelines' schedules until SIGTERM or SIGINT, or with ``once`` run each now.

    The first signal stops new fires and lets running jobs finish (retries are abandoned); a
    second one kills them. Returns the exit status: 0, or with ``once`` 1 unless every pipeline
    ran and ended ok (a run skipped because its pipeline was already running did not run).
    Raises :class:`mlalgo.config.ConfigError` naming the file and key of any problem.
    """
    from mlalgo.config import ConfigError

    if not pipelines:
        raise ConfigError("no pipeline files given")
    jobs = [load_job(Path(p), require_cron=not once) for p in pipelines]
    first: dict[str, Job] = {}
    for job in jobs:
        if job.name in first:
            raise ConfigError(
                f"{job.path}: name: {job.name!r} is also the name of {first[job.name].path}; "
                "scheduled pipelines need distinct names (they key locks, logs and history)"
            )
        first[job.name] = job
    stop = threading.Event()
    scheduler = Scheduler(
        jobs,
        state_dir.absolute(),
        root=root.absolute(),
        mlflow_config=mlflow_config.absolute(),
        sleep=stop.wait,
        command=command,
    )
    with _stop_on_signals(stop, scheduler):
        if not once:
            scheduler.serve(stop)
            return 0
        statuses = []
        for job in jobs:
            if stop.is_set():
                break
            statuses.append(scheduler.run_once(job))
    everything_ok = len(statuses) == len(jobs) and all(s is Status.OK for s in statuses)
    return 0 if everything_ok else 1


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, scheduler: Scheduler) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``; a second one kills the running jobs. Restored on exit."""

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.warning("%s: finishing the running jobs; send it again to kill them", name)
            stop.set()
        else:
            log.warning("%s again: killing the running jobs", name)
            scheduler.kill()

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller owns signals then
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
