"""Where a study lives: memory, a journal file (workers on one machine) or a database (many).

Workers that die mid-trial leave a RUNNING trial behind. A database storage notices through
Optuna's heartbeat; a journal file has none, so each trial records its host and process id
and :func:`recover` fails (and re-queues) trials whose process on this host is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mlalgo.config import ConfigError

log = logging.getLogger(__name__)

MEMORY = "memory"
MAX_RETRY = 3  # a trial whose worker keeps dying is re-queued at most this often


def normalise(url: str | None) -> str:
    """``postgresql://`` means psycopg 3 here (the driver mlalgo installs), not psycopg2."""
    if not url:
        return MEMORY
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_shared(url: str) -> bool:
    return normalise(url) != MEMORY


def redact(url: str) -> str:
    """The URL with any password masked, for logs, tags and printed output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_storage(url: str | None, heartbeat_seconds: int) -> BaseStorage:
    url = normalise(url)
    if url == MEMORY:
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal:"):
        path = url.removeprefix("journal:").removeprefix("//")
        if not path:
            raise ConfigError("--storage journal:PATH needs a file path, e.g. journal:tune.journal")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError(
            f"--storage {url}: expected memory, journal:PATH or a database URL such as "
            "postgresql://user@host:5432/db"
        )
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental; they are the point
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_seconds,
                grace_period=2 * heartbeat_seconds,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY
                ),
            )
    except Exception as exc:  # sqlalchemy: bad dialect, refused connection, auth
        raise ConfigError(
            f"--storage {redact(url)}: cannot open the study database: {exc}"
        ) from None


def stamp(trial: optuna.Trial) -> None:
    """Record who runs this trial, so a rerun can tell a live worker from a dead one."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(
    study: optuna.Study, on_failed: Callable[[optuna.trial.FrozenTrial], None]
) -> list[int]:
    """Fail RUNNING trials whose worker is gone and queue their parameters again.

    Database storages also do this by heartbeat for workers on other machines; for this host
    the process table is faster and the only way for a journal file.
    """
    storage = study._storage
    if isinstance(storage, RDBStorage):
        optuna.storages.fail_stale_trials(study)
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        failed.append(trial.number)
        retries = int(trial.user_attrs.get("retries", 0))
        if retries < MAX_RETRY:
            study.enqueue_trial(
                trial.params,
                user_attrs={"retry_of": trial.number, "retries": retries + 1},
                skip_if_exists=False,
            )
        log.warning(
            "trial %d: worker %s:%d is gone; marked failed and re-queued", trial.number, host, pid
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.number in failed:
            on_failed(trial)
    return failed
