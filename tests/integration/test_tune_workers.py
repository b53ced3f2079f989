"""`mlalgo tune --workers K` as separate processes meeting in a real PostgreSQL or journal file:
trial counts add up, and killing a worker (or the whole command) mid-trial loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import SAMPLE, SHORT, TRAIN_YAML
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from support.postgres import PG
from support.studies import TUNE_SHORT

TRIALS = 6
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def command(tmp: Path, storage: str, study: str, trials: int = TRIALS) -> list[str]:
    args = [sys.executable, "-m", "mlalgo", "tune", str(TRAIN_YAML), "--trials", str(trials)]
    args += ["--workers", "2", "--storage", storage, "--study", study]
    args += ["--mlflow-config", str(tmp / "mlflow.yaml")]
    for item in (*SHORT, *TUNE_SHORT, f"stages.fetch.path={SAMPLE}"):
        args += ["--set", item]
    return args


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///runs.db\nexperiment: tune\n")
    return tmp_path


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)


_STORAGES: dict[str, optuna.storages.BaseStorage] = {}


def load(storage: str, name: str) -> optuna.Study:
    """The study, through one storage object per URL: a new RDBStorage per poll would open a
    connection pool each time and exhaust PostgreSQL's connection limit."""
    if storage not in _STORAGES:
        if storage.startswith("journal:"):
            backend = optuna.storages.journal.JournalFileBackend(storage.removeprefix("journal:"))
            _STORAGES[storage] = optuna.storages.JournalStorage(backend)
        else:
            _STORAGES[storage] = optuna.storages.RDBStorage(storage)
    return optuna.load_study(study_name=name, storage=_STORAGES[storage])


@pytest.fixture(autouse=True)
def _close_storages():
    yield
    for storage in _STORAGES.values():
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()  # before the database is dropped
    _STORAGES.clear()


def wait_mid_trial(
    proc: subprocess.Popen, storage: str, name: str, done: int
) -> optuna.trial.FrozenTrial:
    """A running trial that has reported at least one fold, once ``done`` trials are finished."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            study = load(storage, name)
        except KeyError:  # the driver has not created the study yet
            time.sleep(0.2)
            continue
        trials = study.get_trials(deepcopy=False)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and 0 < len(t.intermediate_values) < 5  # of 8 folds
        ]
        if running and sum(t.state in DONE for t in trials) >= done:
            return running[0]
        time.sleep(0.05)
    pytest.fail("no trial reached its first fold within 5 minutes")


def mlflow_runs(tmp: Path, parent: str) -> list:
    client = MlflowClient(f"sqlite:///{tmp}/runs.db")
    exp = client.get_experiment_by_name("tune")
    return client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")


def test_two_workers_share_a_postgres_study_and_the_trials_add_up(database: str, workdir: Path):
    storage = f"postgresql://{PG}/{database}"
    out = run(command(workdir, storage, "shared"), workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    study = load(f"postgresql+psycopg://{PG}/{database}", "shared")
    done = study.get_trials(states=DONE)
    assert len(done) == len(study.trials) == TRIALS
    by_worker: dict[int, int] = {}
    for trial in done:
        by_worker[trial.user_attrs["pid"]] = by_worker.get(trial.user_attrs["pid"], 0) + 1
    assert sorted(by_worker.values()) == [TRIALS // 2, TRIALS // 2]  # two processes, 3 each
    assert "study shared (postgresql+psycopg://postgres@127.0.0.1:5432/" in out.stdout
    assert "deflated Sharpe ratio" in out.stdout and "hold-out 2008-01-03" in out.stdout
    trial_runs = [
        r
        for r in mlflow_runs(workdir, study.user_attrs["mlflow_parent_run_id"])
        if r.info.run_name.startswith("trial-")
    ]
    assert sorted(int(r.data.tags["mlalgo.trial"]) for r in trial_runs) == list(range(TRIALS))

    # A second machine (here: a second command) joining with a larger budget adds to the study.
    more = run(command(workdir, storage, "shared", trials=TRIALS + 2), workdir)
    assert more.returncode == 0, more.stdout + more.stderr
    assert (
        len(load(f"postgresql+psycopg://{PG}/{database}", "shared").get_trials(states=DONE))
        == TRIALS + 2
    )


def test_killing_a_worker_mid_trial_leaves_the_study_resumable(database: str, workdir: Path):
    storage = f"postgresql+psycopg://{PG}/{database}"
    args = command(workdir, storage, "killed")
    proc = subprocess.Popen(
        args, cwd=workdir, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    victim = wait_mid_trial(proc, storage, "killed", done=1)
    assert victim.user_attrs["pid"] != proc.pid  # a worker process, not the driver
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 1, output
    assert "exited with signal 9" in output and "rerun the same command" in output

    study = load(storage, "killed")
    assert study.trials[victim.number].state == TrialState.FAIL
    again = run(args, workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    study = load(storage, "killed")
    assert len(study.get_trials(states=DONE)) == TRIALS
    assert study.trials[victim.number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retried) == 1 and retried[0].state in DONE
    assert retried[0].params == victim.params
    runs = {
        r.info.run_id: r for r in mlflow_runs(workdir, study.user_attrs["mlflow_parent_run_id"])
    }
    killed_run = runs[victim.user_attrs["mlflow_run_id"]]
    assert (
        killed_run.info.status == "FAILED" and killed_run.data.tags["mlalgo.trial_state"] == "FAIL"
    )


def test_killing_the_whole_command_resumes_from_a_journal_file(workdir: Path):
    storage = f"journal:{workdir}/tune.journal"
    args = command(workdir, storage, "journal")
    proc = subprocess.Popen(
        args,
        cwd=workdir,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    victim = wait_mid_trial(proc, storage, "journal", done=2)
    os.killpg(proc.pid, signal.SIGKILL)  # driver and both workers, mid-trial
    proc.wait(timeout=30)
    time.sleep(0.5)
    before = load(storage, "journal")
    parent = before.user_attrs["mlflow_parent_run_id"]
    assert before.trials[victim.number].state == TrialState.RUNNING  # nobody left to say otherwise

    again = run(args, workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    study = load(storage, "journal")
    assert len(study.get_trials(states=DONE)) == TRIALS
    assert study.trials[victim.number].state == TrialState.FAIL
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert study.user_attrs["mlflow_parent_run_id"] == parent  # the same parent run, resumed
    client = MlflowClient(f"sqlite:///{workdir}/runs.db")
    assert client.get_run(parent).info.status == "FINISHED"
