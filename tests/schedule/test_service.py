"""``run_scheduler``: pipeline files in, exit status out, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlalgo.config import ConfigError
from mlalgo.schedule import History, Status, run_scheduler

ROOT = Path(__file__).resolve().parents[2]


def pipeline(tmp_path: Path, name: str, schedule: str = '  cron: "0 22 * * 1-5"\n') -> Path:
    """The default pipeline under another name, with a schedule section appended."""
    text = (ROOT / "pipelines" / "train.yaml").read_text().replace("name: train", f"name: {name}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"{text}\nschedule:\n{schedule}")
    return path


def run(tmp_path: Path, pipelines: list[Path], code: str, once: bool = True) -> int:
    return run_scheduler(
        pipelines,
        state_dir=tmp_path / "state",
        root=tmp_path,
        mlflow_config=tmp_path / "mlflow.yaml",
        once=once,
        command=lambda job, summary: [sys.executable, "-c", code, str(summary)],
    )


SUMMARY = (
    "import json, sys; json.dump({'run_id': 'r1', 'decision': 'keep'}, open(sys.argv[1], 'w'))"
)


def test_once_runs_every_pipeline_now_and_exits_0(tmp_path):
    paths = [pipeline(tmp_path, "daily"), pipeline(tmp_path, "weekly", "  retries: 1\n")]

    assert run(tmp_path, paths, SUMMARY) == 0

    runs = History(tmp_path / "state" / "schedule.db").runs()
    assert sorted((r.pipeline, r.status, r.mlflow_run_id) for r in runs) == [
        ("daily", Status.OK, "r1"),
        ("weekly", Status.OK, "r1"),
    ]
    assert {r.pipeline_path for r in runs} == {p.absolute() for p in paths}


def test_once_exits_1_when_a_run_fails(tmp_path):
    assert run(tmp_path, [pipeline(tmp_path, "daily")], "raise SystemExit(1)") == 1


def test_serving_needs_a_cron_in_every_pipeline(tmp_path):
    path = pipeline(tmp_path, "daily", "  retries: 1\n")

    with pytest.raises(ConfigError, match=r"daily\.yaml: schedule\.cron: required"):
        run(tmp_path, [path], "pass", once=False)


def test_two_pipelines_with_one_name_are_refused(tmp_path):
    first = pipeline(tmp_path, "daily")
    second = tmp_path / "copy.yaml"
    second.write_text(first.read_text())

    with pytest.raises(ConfigError, match="is also the name of"):
        run(tmp_path, [first, second], "pass")


def test_importing_the_package_stays_light():
    code = (
        "import sys, mlalgo.schedule; "
        "heavy = {'pandas', 'mlflow', 'lightgbm', 'sklearn'} & set(sys.modules); "
        "sys.exit(', '.join(sorted(heavy)) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


DRIVER = """
import logging, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from mlalgo.schedule import History, run_scheduler

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
pipeline, state, marker, seconds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
# Tracked since before last midnight, so the midnight fire is due the moment serving starts.
History(state / "schedule.db").start_tracking("nightly", datetime.now(UTC) - timedelta(days=2))
JOB = (
    "import pathlib, sys, time; m = pathlib.Path(sys.argv[1]); m.write_text('started'); "
    "time.sleep(float(sys.argv[2])); m.write_text('finished')"
)
sys.exit(run_scheduler(
    [pipeline], state_dir=state, root=state, mlflow_config=state / "mlflow.yaml", once=False,
    command=lambda job, summary: [sys.executable, "-c", JOB, marker, seconds],
))
"""


@pytest.fixture
def serve(tmp_path: Path):
    """``serve(job_seconds)``: a real scheduler process serving one nightly pipeline whose fire
    is due at once; returns the process and the job's marker file."""
    procs: list[subprocess.Popen] = []
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    path = pipeline(tmp_path, "nightly", '  cron: "0 0 * * *"\n')
    state = tmp_path / "state"
    state.mkdir()

    def start(job_seconds: float) -> tuple[subprocess.Popen, Path, Path]:
        marker, log = tmp_path / "marker", tmp_path / "scheduler.log"
        with log.open("w") as out:
            argv = [sys.executable, str(driver), str(path), str(state), str(marker)]
            proc = subprocess.Popen([*argv, str(job_seconds)], stderr=out, cwd=tmp_path)
        procs.append(proc)
        wait_for(lambda: marker.exists(), proc, log)
        return proc, marker, log

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def wait_for(condition, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the scheduler did not get there:\n{log.read_text()}")
        time.sleep(0.05)


def nightly_runs(tmp_path: Path):
    return History(tmp_path / "state" / "schedule.db").runs("nightly")


def test_sigterm_lets_the_running_job_finish_then_exits_0(serve, tmp_path):
    proc, marker, log = serve(job_seconds=1.5)

    proc.send_signal(signal.SIGTERM)

    assert proc.wait(timeout=60) == 0, log.read_text()
    assert marker.read_text() == "finished"
    assert [r.status for r in nightly_runs(tmp_path)] == [Status.OK]
    assert "SIGTERM: finishing the running jobs" in log.read_text()


def test_a_second_signal_kills_the_running_job(serve, tmp_path):
    proc, marker, log = serve(job_seconds=60)

    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "finishing the running jobs" in log.read_text(), proc, log)
    proc.send_signal(signal.SIGINT)

    assert proc.wait(timeout=30) == 0, log.read_text()
    assert marker.read_text() == "started"
    (run,) = nightly_runs(tmp_path)
    assert run.status is Status.FAILED
    assert run.message.startswith("killed: the scheduler was stopped")
