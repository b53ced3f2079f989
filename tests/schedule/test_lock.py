"""One run per pipeline: the lock is exclusive across processes and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlalgo.schedule.lock import PipelineLock

HOLD = """
import sys, time
from pathlib import Path
from mlalgo.schedule.lock import PipelineLock
with PipelineLock(Path(sys.argv[1])) as lock:
    print("locked" if lock.acquired else "busy", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """A real process holding ``tmp_path/locks/retrain.lock``."""
    argv = [sys.executable, "-c", HOLD, str(tmp_path / "locks" / "retrain.lock")]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
        proc.kill()


def test_a_lock_held_by_another_process_is_refused_and_names_its_pid(tmp_path, holder):
    with PipelineLock(tmp_path / "locks" / "retrain.lock") as lock:
        assert not lock.acquired
        assert lock.holder_pid == holder.pid
        assert lock.holder.startswith(f"pid {holder.pid} since ")


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    with PipelineLock(tmp_path / "locks" / "retrain.lock") as lock:
        assert lock.acquired


def test_a_second_lock_in_the_same_process_is_refused_until_the_first_is_released(tmp_path):
    path = tmp_path / "retrain.lock"

    with PipelineLock(path) as first, PipelineLock(path) as second:
        assert first.acquired and not second.acquired
        assert second.holder_pid == os.getpid()
    with PipelineLock(path) as third:
        assert third.acquired


def test_locks_of_different_pipelines_are_independent(tmp_path):
    with PipelineLock(tmp_path / "a.lock") as a, PipelineLock(tmp_path / "b.lock") as b:
        assert a.acquired and b.acquired
