"""Deciding which fires are due and running each through the lock, retries and history.

The clock, the sleep between retries and the command are injected: tests drive ``tick(now)``
with chosen times and real short processes, and never wait out a backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from mlalgo.schedule.cron import Fire, latest_fire
from mlalgo.schedule.history import History, RunRecord, Status
from mlalgo.schedule.job import Command, Job, mlalgo_run_command
from mlalgo.schedule.lock import PipelineLock
from mlalgo.schedule.process import Children, Finished

__all__ = ["Job", "Scheduler"]

log = logging.getLogger("mlalgo.schedule")

MAX_NAP_SECONDS = 30.0  # serve() re-reads the clock at least this often (suspend, clock steps)
CONFIG_ERROR_EXIT = 2  # `mlalgo run`: bad configuration or input; the same again cannot succeed
_TAIL_LINES = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Runs each job at its cron fires; one run per pipeline at a time, every attempt recorded.

    Jobs of different pipelines run concurrently, each in a thread of its own that waits on a
    child process. ``sleep(seconds)`` waits between retries; when it returns True (as
    ``threading.Event.wait`` does once the scheduler is stopping) the retries are abandoned.
    State lives in ``state_dir``: ``schedule.db`` (see :mod:`mlalgo.schedule.history`),
    ``locks/<pipeline>.lock`` and ``logs/<pipeline>/<UTC start>-attempt<N>.log``.
    """

    def __init__(
        self,
        jobs: Iterable[Job],
        state_dir: Path,
        *,
        root: Path,
        mlflow_config: Path,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], object] = time.sleep,
        command: Command | None = None,
    ) -> None:
        self.jobs = tuple(jobs)
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(
                f"pipeline names must be distinct (they key locks and history): {names}"
            )
        self.state_dir = state_dir
        self.root = root
        self.history = History(state_dir / "schedule.db")
        self.command = command or mlalgo_run_command(mlflow_config)
        self._clock = clock
        self._sleep = sleep
        self._children = Children()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._guard = threading.Lock()

    def due(self, now: datetime) -> list[Job]:
        """Jobs with a fire in ``(handled_through, now]`` not yet claimed."""
        return [job for job in self._scheduled() if self._due_fire(job, now) is not None]

    def tick(self, now: datetime) -> list[Job]:
        """Claim every due fire and start its run in a thread; returns the jobs started.

        A pipeline seen for the first time only starts being tracked at ``now``. Call
        :meth:`wait` to wait for the runs.
        """
        started = []
        for job in self._scheduled():
            if self.history.start_tracking(job.name, now):
                first = job.schedule.next_fire(now)
                log.info(
                    "%s: on schedule %r, first fire %s", job.name, job.schedule.cron, _t(first)
                )
                continue
            fire = self._due_fire(job, now)
            if fire is None or not self.history.claim(job.name, fire.at):
                continue
            if fire.missed:
                log.warning(
                    "%s: %d fire(s) missed while the scheduler was not running; "
                    "running only the latest, %s",
                    job.name,
                    fire.missed,
                    _t(fire.at),
                )
            self._start(job, fire.at)
            started.append(job)
        return started

    def run_once(self, job: Job) -> Status:
        """Run ``job`` now, in this thread, through the same lock, retries and history."""
        return self._fire(job, self._clock())

    def serve(self, stop: threading.Event) -> None:
        """Tick at every fire until ``stop`` is set, then let the running jobs finish."""
        jobs = self._scheduled()
        if not jobs:
            raise ValueError("no job has a schedule.cron, so there is nothing to serve")
        log.info(
            "scheduler started: %s; state in %s", ", ".join(j.name for j in jobs), self.state_dir
        )
        while not stop.is_set():
            now = self._clock()
            self.tick(now)
            wake = min(job.schedule.next_fire(now) for job in jobs)
            nap = (wake - self._clock()).total_seconds()
            stop.wait(min(MAX_NAP_SECONDS, max(0.0, nap)))
        self._stopping.set()
        running = self._running()
        if running:
            log.info("stopping: waiting for %s to finish", ", ".join(t.name for t in running))
        self.wait()
        log.info("scheduler stopped")

    def wait(self) -> None:
        """Block until every run started by :meth:`tick` has finished."""
        while running := self._running():
            for thread in running:
                thread.join()

    def kill(self) -> None:
        """Stop retrying and SIGKILL every running job's process group."""
        self._stopping.set()
        self._children.kill_all()

    def _scheduled(self) -> list[Job]:
        return [job for job in self.jobs if job.schedule.cron is not None]

    def _due_fire(self, job: Job, now: datetime) -> Fire | None:
        handled = self.history.handled_through(job.name)
        if handled is None or job.schedule.cron is None:
            return None
        return latest_fire(job.schedule.cron, job.schedule.zone, handled, now)

    def _start(self, job: Job, fire: datetime) -> None:
        thread = threading.Thread(
            target=self._fire_logged, args=(job, fire), name=job.name, daemon=False
        )
        with self._guard:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _running(self) -> list[threading.Thread]:
        with self._guard:
            return [t for t in self._threads if t.is_alive()]

    def _fire_logged(self, job: Job, fire: datetime) -> None:
        try:
            self._fire(job, fire)
        except Exception:
            log.exception(
                "%s: the run of the %s fire failed inside the scheduler", job.name, _t(fire)
            )

    def _fire(self, job: Job, scheduled_for: datetime) -> Status:
        with PipelineLock(self.state_dir / "locks" / f"{job.name}.lock") as lock:
            if lock.acquired:
                return self._attempts(job, scheduled_for)
        now = self._clock()
        reason = f"the previous run is still going (lock held by {lock.holder})"
        log.warning("%s: fire %s skipped: %s", job.name, _t(scheduled_for), reason)
        self.history.add(
            RunRecord(
                job.name, job.path, scheduled_for, now, now, 1, Status.SKIPPED, message=reason
            )
        )
        return Status.SKIPPED

    def _attempts(self, job: Job, scheduled_for: datetime) -> Status:
        total = job.schedule.retries + 1
        for attempt in range(1, total + 1):
            record, retryable = self._attempt(job, scheduled_for, attempt, total)
            self.history.add(record)
            if record.status is Status.OK or not retryable or attempt == total:
                return record.status
            delay = job.schedule.retry_delay(attempt)
            log.warning("%s: retry %d/%d in %g s", job.name, attempt, total - 1, delay)
            if self._sleep(delay) is True or self._stopping.is_set():
                log.warning("%s: not retrying, the scheduler is stopping", job.name)
                return record.status
        raise AssertionError("unreachable: the last attempt always returns")

    def _attempt(
        self, job: Job, scheduled_for: datetime, attempt: int, total: int
    ) -> tuple[RunRecord, bool]:
        """Run one attempt; the record, and whether another attempt could succeed."""
        started = self._clock()
        base = self.state_dir / "logs" / job.name / f"{started:%Y%m%dT%H%M%SZ}-attempt{attempt}"
        log_path, summary = Path(f"{base}.log"), Path(f"{base}.summary.json")
        summary.unlink(missing_ok=True)
        argv = self.command(job, summary)

        def record(
            status: Status, message: str, exit_code: int | None = None, run_id: str | None = None
        ) -> RunRecord:
            ended = self._clock()
            return RunRecord(
                job.name, job.path, scheduled_for, started, ended, attempt, status,
                exit_code=exit_code, mlflow_run_id=run_id, message=message, log_path=log_path,
            )  # fmt: skip

        log.info("%s: attempt %d/%d started, log %s", job.name, attempt, total, log_path)
        try:
            done = self._children.run(
                argv, cwd=self.root, log_path=log_path, timeout=job.schedule.timeout_seconds
            )
        except OSError as exc:
            message = f"could not start {argv[0]}: {exc}"
            log.error("%s: %s", job.name, message)
            return record(Status.FAILED, message), False
        status, reason, retryable = _judge(done, job)
        run_id, decision = _read_summary(summary)
        if status is Status.OK:
            message = f"decision: {decision}" if decision else ""
        else:
            message = "\n".join(part for part in (reason, _tail(log_path)) if part)
        result = record(status, message, done.exit_code, run_id)
        _log_outcome(result, reason)
        return result, retryable


def _judge(done: Finished, job: Job) -> tuple[Status, str, bool]:
    if done.timed_out:
        return Status.TIMEOUT, f"killed after {job.schedule.timeout_minutes:g} min", not done.killed
    if done.killed:
        return Status.FAILED, "killed: the scheduler was stopped", False
    if done.exit_code == 0:
        return Status.OK, "", False
    if done.exit_code == CONFIG_ERROR_EXIT:
        return Status.FAILED, "exit 2: a configuration or input error, not retried", False
    return Status.FAILED, f"exit {done.exit_code}", True


def _log_outcome(record: RunRecord, reason: str) -> None:
    took = f"{(record.ended_at - record.started_at).total_seconds():.0f} s"
    if record.status is Status.OK:
        run = f", MLflow run {record.mlflow_run_id}" if record.mlflow_run_id else ""
        log.info("%s: ok in %s%s", record.pipeline, took, run)
        return
    last = [line for line in record.message.splitlines() if line.strip()][-1:]
    detail = f"{reason}: {last[0].strip()}" if last and last[0] != reason else reason
    log.error("%s: %s after %s (%s), log %s", record.pipeline, record.status, took, detail,
              record.log_path)  # fmt: skip


def _read_summary(path: Path) -> tuple[str | None, str | None]:
    """``run_id`` and ``decision`` from ``mlalgo run --summary-json``, when it wrote one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    run_id, decision = data.get("run_id"), data.get("decision")
    return (str(run_id) if run_id else None), (None if decision is None else str(decision))


def _tail(path: Path, max_chars: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4 * max_chars))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])[-max_chars:]


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
