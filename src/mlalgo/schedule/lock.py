"""One run of a pipeline at a time, across threads, processes and restarts.

An ``flock`` rather than a pid file: the kernel drops it when the holder dies, however it dies,
so a crashed scheduler never leaves a stale lock behind to be guessed at. The file itself stays
(deleting a lock file races with the next opener) and names its holder for the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType


class PipelineLock:
    """Non-blocking exclusive lock on ``path``; ``with`` it, then look at ``acquired``.

    The lock belongs to the open file, so a second ``PipelineLock`` on the same path fails even
    inside the same process (another thread's run of the same pipeline).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "train.lock"
    >>> with PipelineLock(path) as first, PipelineLock(path) as second:
    ...     first.acquired, second.acquired, second.holder_pid == os.getpid()
    (True, False, True)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.acquired = False
        self.holder = ""  # when not acquired: "pid N since T", as the holder wrote it
        self._fd: int | None = None

    @property
    def holder_pid(self) -> int | None:
        parts = self.holder.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def __enter__(self) -> PipelineLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "pid unknown"
            os.close(fd)
            return self
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {started}\n".encode(), 0)
        self._fd, self.acquired = fd, True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd, self.acquired = None, False
