"""Helpers for tests that start servers and browsers as real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI a missing service or browser is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is not skipped)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End the process group started with ``start_new_session`` (server, workers, job runners)."""
    os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers still holding database connections
    proc.wait(timeout=10)


def wait_for_health(
    base: str, proc: subprocess.Popen, what: str, output: Callable[[], str]
) -> None:
    """Poll ``base/health`` until it answers OK; fail with the process's output if it dies or
    takes more than a minute."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as resp:
                if resp.read() == b"OK":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not come up on {base}:\n{output()}")
        time.sleep(0.5)
