"""Scheduled retraining: pipelines rerun on a cron schedule, one run per pipeline at a time,
failed runs retried with backoff, every attempt recorded (``mlalgo schedule``).

Importing this package stays light (no pandas, no MLflow): the scheduler only starts
``mlalgo run`` processes.
"""

from mlalgo.schedule.config import ScheduleConfig
from mlalgo.schedule.history import History, RunRecord, Status, format_history
from mlalgo.schedule.job import Job, load_job, mlalgo_run_command
from mlalgo.schedule.scheduler import Scheduler
from mlalgo.schedule.service import run_scheduler

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
