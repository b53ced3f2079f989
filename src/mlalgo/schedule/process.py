"""Job processes: started in their own process group, logged to a file, killed as a group.

A retrain can leave children of its own (tuning workers, LightGBM threads in a subprocess);
killing only the direct child would orphan them still holding CPU and database connections, so
timeouts and shutdown signal the whole group, TERM first, then KILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 10.0  # between SIGTERM and SIGKILL


@dataclass(frozen=True)
class Finished:
    exit_code: int  # negative: killed by that signal
    timed_out: bool
    killed: bool  # ended by :meth:`Children.kill_all` (the scheduler shutting down)


class Children:
    """The job processes running now, so a shutdown can reach all of them."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._guard = threading.Lock()
        self._killing = threading.Event()

    def run(self, argv: list[str], *, cwd: Path, log_path: Path, timeout: float | None) -> Finished:
        """Run ``argv`` to completion with stdout and stderr appended to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._guard:
            self._running.add(proc)
        try:
            if self._killing.is_set():
                _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                terminate_group(proc)
        finally:
            with self._guard:
                self._running.discard(proc)
        return Finished(proc.returncode, timed_out, killed=self._killing.is_set())

    def kill_all(self) -> None:
        """SIGKILL every running job's process group, and any started from now on."""
        self._killing.set()
        with self._guard:
            running = list(self._running)
        for proc in running:
            _signal_group(proc, signal.SIGKILL)


def terminate_group(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM ``proc``'s group, SIGKILL it after ``grace`` seconds, and reap ``proc``.

    The KILL goes to the group even when ``proc`` exited on TERM, for members that ignored it;
    Linux does not reuse a pid while it still names a process group.
    """
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
