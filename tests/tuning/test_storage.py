"""Storage URLs, and recovery of trials whose worker died (the journal file has no heartbeat)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mlalgo.config import ConfigError
from mlalgo.tuning.storage import is_shared, normalise, open_storage, recover, redact


def test_urls() -> None:
    assert normalise(None) == "memory" and not is_shared("")
    assert normalise("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalise("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert is_shared("journal:x.journal")
    assert (
        redact("postgresql+psycopg://u:hunter2@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    )
    assert redact("journal:x.journal") == "journal:x.journal"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "expected memory, journal:PATH or a database URL"),
        ("journal:", "needs a file path"),
        ("mysql+nodriver://u:secret@127.0.0.1/x", r"u:\*\*\*@127.0.0.1.*cannot open"),
    ],
)
def test_bad_storage_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        open_storage(url, 30)
    assert "secret" not in str(err.value)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_fails_and_requeues_only_trials_of_dead_local_workers(tmp_path: Path) -> None:
    storage = open_storage(f"journal:{tmp_path}/s.journal", 30)
    study = optuna.create_study(study_name="s", storage=storage)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owners = {
            "dead": (socket.gethostname(), _dead_pid()),
            "alive": (socket.gethostname(), alive.pid),
            "elsewhere": ("another-host", _dead_pid()),
        }
        trials = {}
        for name, (host, pid) in owners.items():
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            trial.set_user_attr("host", host)
            trial.set_user_attr("pid", pid)
            trials[name] = trial
        closed = []
        failed = recover(study, closed.append)
        state = {t.number: t.state for t in study.get_trials()}
        assert failed == [trials["dead"].number]
        assert [t.number for t in closed] == failed
        assert state[trials["dead"].number] == TrialState.FAIL
        assert state[trials["alive"].number] == TrialState.RUNNING
        assert state[trials["elsewhere"].number] == TrialState.RUNNING
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert len(waiting) == 1
        assert waiting[0].user_attrs == {"retry_of": trials["dead"].number, "retries": 1}
        # The re-queued parameters are the next trial any worker asks for.
        retry = study.ask()
        assert retry.suggest_float("x", 0, 1) == trials["dead"].params["x"]
    finally:
        alive.kill()
        alive.wait()
