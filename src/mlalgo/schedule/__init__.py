"""Scheduled retraining: pipelines rerun on a cron schedule, one run per pipeline at a time,
failed runs retried with backoff, every attempt recorded (``mlalgo schedule``).

Importing this package stays light (no pandas, no MLflow): the scheduler only starts
``mlalgo run`` processes. Its parts load on first use, because every process that reads a
pipeline config imports :class:`ScheduleConfig` through this package (the live executor
included) and needs none of the scheduler itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlalgo._lazy import lazy_exports

if TYPE_CHECKING:
    from mlalgo.schedule.config import ScheduleConfig
    from mlalgo.schedule.history import History, RunRecord, Status, format_history
    from mlalgo.schedule.job import Job, load_job, mlalgo_run_command
    from mlalgo.schedule.scheduler import Scheduler
    from mlalgo.schedule.service import run_scheduler

_HOMES = {
    "History": "history",
    "Job": "job",
    "RunRecord": "history",
    "ScheduleConfig": "config",
    "Scheduler": "scheduler",
    "Status": "history",
    "format_history": "history",
    "load_job": "job",
    "mlalgo_run_command": "job",
    "run_scheduler": "service",
}

__all__ = [
    "History",
    "Job",
    "RunRecord",
    "ScheduleConfig",
    "Scheduler",
    "Status",
    "format_history",
    "load_job",
    "mlalgo_run_command",
    "run_scheduler",
]


__getattr__ = lazy_exports(__name__, _HOMES)
