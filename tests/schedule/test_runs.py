"""How one fire runs: real processes, retries with backoff, timeouts, summaries and the lock."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlalgo.schedule import Status, mlalgo_run_command

MON_21 = datetime(2024, 1, 8, 21, 0, tzinfo=UTC)
MON_22 = datetime(2024, 1, 8, 22, 0, tzinfo=UTC)

FAIL_TWICE = """
import pathlib, sys
counter = pathlib.Path(sys.argv[2])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print(f"attempt {n}")
sys.exit(0 if n == 3 else 1)
"""


def statuses(scheduler) -> list[tuple[int, Status]]:
    """(attempt, status) oldest first."""
    return [(r.attempt, r.status) for r in reversed(scheduler.history.runs())]


def test_a_failing_run_is_retried_with_doubling_delays(
    make_job, make_scheduler, python, sleeps, tmp_path
):
    job = make_job(retries=2, retry_delay_seconds=5)
    scheduler = make_scheduler([job], python(FAIL_TWICE, tmp_path / "count"))

    assert scheduler.run_once(job) is Status.OK

    assert statuses(scheduler) == [(1, Status.FAILED), (2, Status.FAILED), (3, Status.OK)]
    assert sleeps == [5, 10]
    failed = scheduler.history.runs()[-1]
    assert failed.exit_code == 1
    assert failed.message == "exit 1\nattempt 1"


def test_retries_stop_after_the_configured_number(make_job, make_scheduler, python, sleeps):
    job = make_job(retries=2, retry_delay_seconds=1)
    scheduler = make_scheduler([job], python("raise SystemExit(3)"))

    assert scheduler.run_once(job) is Status.FAILED

    assert statuses(scheduler) == [(n, Status.FAILED) for n in (1, 2, 3)]
    assert sleeps == [1, 2]


def test_a_configuration_error_exit_2_is_not_retried(make_job, make_scheduler, python, sleeps):
    job = make_job(retries=3)
    code = "import sys; print('error: pipelines/x.yaml: stages: bad', file=sys.stderr); sys.exit(2)"
    scheduler = make_scheduler([job], python(code))

    assert scheduler.run_once(job) is Status.FAILED

    (run,) = scheduler.history.runs()
    assert run.exit_code == 2
    assert "not retried" in run.message
    assert run.message.endswith("error: pipelines/x.yaml: stages: bad")
    assert sleeps == []


SPAWN_AND_HANG = """
import pathlib, subprocess, sys
child = subprocess.Popen(["sleep", "60"])
pathlib.Path(sys.argv[2]).write_text(str(child.pid))
child.wait()
"""


def gone(pid: int) -> bool:
    """Exited (a zombie counts: it no longer runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def test_a_run_past_its_timeout_is_killed_with_its_children(
    make_job, make_scheduler, python, tmp_path
):
    job = make_job(timeout_minutes=0.02)  # 1.2 s
    pid_file = tmp_path / "grandchild.pid"
    scheduler = make_scheduler([job], python(SPAWN_AND_HANG, pid_file))

    assert scheduler.run_once(job) is Status.TIMEOUT

    (run,) = scheduler.history.runs()
    assert run.status is Status.TIMEOUT
    assert run.message.startswith("killed after 0.02 min")
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(grandchild), "the job's own child survived the timeout"


WRITE_SUMMARY = """
import json, sys
print("training", flush=True)
print("a warning", file=sys.stderr, flush=True)
json.dump({"run_id": "9f2c0e1d", "decision": "promote"}, open(sys.argv[1], "w"))
"""


def test_the_mlflow_run_id_is_read_from_the_summary(make_job, make_scheduler, python, tmp_path):
    job = make_job()
    scheduler = make_scheduler([job], python(WRITE_SUMMARY))

    assert scheduler.run_once(job) is Status.OK

    (run,) = scheduler.history.runs()
    assert (run.mlflow_run_id, run.message, run.exit_code) == ("9f2c0e1d", "decision: promote", 0)
    assert run.log_path is not None
    assert run.log_path.parent == tmp_path / "state" / "logs" / "retrain"
    assert run.log_path.name.endswith("-attempt1.log")
    assert run.log_path.read_text().splitlines() == ["training", "a warning"]


@pytest.mark.parametrize("summary", [None, "not json", '["a list"]', '{"decision": "keep"}'])
def test_a_missing_or_odd_summary_leaves_the_run_id_empty(
    make_job, make_scheduler, python, summary
):
    code = "" if summary is None else f"open(__import__('sys').argv[1], 'w').write({summary!r})"
    job = make_job()
    scheduler = make_scheduler([job], python(code or "pass"))

    assert scheduler.run_once(job) is Status.OK
    assert scheduler.history.runs()[0].mlflow_run_id is None


def test_a_command_that_cannot_start_is_a_failed_attempt(make_job, make_scheduler, sleeps):
    job = make_job(retries=2)
    scheduler = make_scheduler([job], lambda job, summary: ["/nonexistent/mlalgo"])

    assert scheduler.run_once(job) is Status.FAILED

    (run,) = scheduler.history.runs()
    assert run.message.startswith("could not start /nonexistent/mlalgo")
    assert sleeps == []


HOLD_LOCK = """
import sys, time
from pathlib import Path
from mlalgo.schedule.lock import PipelineLock
with PipelineLock(Path(sys.argv[1])) as lock:
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_fire_finding_its_pipeline_locked_is_skipped_without_waiting(
    make_job, make_scheduler, python, tmp_path
):
    job = make_job()
    scheduler = make_scheduler([job], python("pass"))
    lock_path = tmp_path / "state" / "locks" / "retrain.lock"
    argv = [sys.executable, "-c", HOLD_LOCK, str(lock_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            scheduler.tick(MON_21)
            assert scheduler.tick(MON_22) == [job]
            scheduler.wait()

            (run,) = scheduler.history.runs()
            assert run.status is Status.SKIPPED
            assert f"lock held by pid {holder.pid}" in run.message
            assert holder.poll() is None  # still holding: the fire did not wait for the lock
        finally:
            holder.kill()


def test_a_run_once_while_the_pipeline_runs_in_this_process_is_skipped(
    make_job, make_scheduler, python, tmp_path
):
    import os

    from mlalgo.schedule.lock import PipelineLock

    job = make_job()
    scheduler = make_scheduler([job], python("pass"))

    with PipelineLock(tmp_path / "state" / "locks" / "retrain.lock"):
        assert scheduler.run_once(job) is Status.SKIPPED

    assert f"pid {os.getpid()}" in scheduler.history.runs()[0].message
    assert scheduler.run_once(job) is Status.OK


def test_the_default_command_runs_mlalgo_run_with_this_interpreter(make_job, tmp_path):
    job = make_job()
    summary = tmp_path / "s.json"

    argv = mlalgo_run_command(Path("/srv/mlflow.yaml"))(job, summary)

    assert argv == [
        sys.executable, "-m", "mlalgo", "run", str(job.path),
        "--mlflow-config", "/srv/mlflow.yaml", "--summary-json", str(summary),
    ]  # fmt: skip


def test_the_scheduler_defaults_to_mlalgo_run(make_job, tmp_path):
    from mlalgo.schedule import Scheduler

    scheduler = Scheduler([make_job()], tmp_path, root=tmp_path, mlflow_config=Path("m.yaml"))

    assert scheduler.command(make_job(), tmp_path / "s.json")[1:4] == ["-m", "mlalgo", "run"]


def test_runs_are_recorded_with_their_fire_time(make_job, make_scheduler, python):
    job = make_job()
    scheduler = make_scheduler([job], python("pass"))
    scheduler.tick(MON_21)
    scheduler.tick(MON_22 + timedelta(seconds=30))
    scheduler.wait()

    (run,) = scheduler.history.runs()
    assert run.scheduled_for == MON_22
    assert run.started_at <= run.ended_at
