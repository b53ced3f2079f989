"""Hot reload: the registry is asked on a thread of its own, the loop swaps between rows.

Resolving ``models:/NAME@alias`` spawns a process that imports MLflow: seconds the loop must
not stall for. So a check runs on a daemon thread, one at a time, and the loop collects its
result when it is ready. The next check is due ``every`` seconds after the last result was
taken. A check that fails is logged and the running model trades on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from mlalgo.bundle import Bundle
from mlalgo.live.events import emit


def bundle_tag(bundle: Bundle) -> str:
    """``name/version``: how logs, the journal and the status name a bundle."""
    return f"{bundle.manifest.get('name', 'model')}/{bundle.version}"


class Reloader:
    """Checks ``check()`` (the alias's verified bundle, or None) every ``every`` seconds."""

    def __init__(self, check: Callable[[], Bundle | None], every: float | None) -> None:
        self.check, self.every = check, every or math.inf
        self._due = time.monotonic() + self.every
        self._running: Future[Bundle | None] | None = None

    def poll(self, current: Bundle) -> Bundle | None:
        """A bundle other than ``current`` once a check has brought one; otherwise None.
        Starts a check when one is due."""
        running = self._running
        if running is None:
            if time.monotonic() >= self._due:
                self._start()
            return None
        if not running.done():
            return None
        self._running = None
        self._due = time.monotonic() + self.every
        try:
            bundle = running.result()
        except Exception as exc:  # a bad new version never stops a running executor
            emit("reload_failed", logging.ERROR, error=str(exc))
            return None
        if bundle is None or bundle_tag(bundle) == bundle_tag(current):
            return None
        return bundle

    def _start(self) -> None:
        """``check()`` on a daemon thread: a stopped executor exits without waiting for it."""
        running: Future[Bundle | None] = Future()

        def work() -> None:
            try:
                running.set_result(self.check())
            except BaseException as exc:  # handed to the loop, which logs it
                running.set_exception(exc)

        threading.Thread(target=work, name="mlalgo-reload", daemon=True).start()
        self._running = running
