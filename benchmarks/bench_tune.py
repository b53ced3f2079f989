"""Tuning throughput of ``mlalgo tune`` with 1 and with 2 worker processes, in the same run.

Run from the repository root::

    python -m benchmarks.bench_tune [--trials 8]

Why: ``--workers K`` is only worth its processes if trials per minute go up. Each worker count
runs the real command line (a subprocess, in a fresh temporary directory with its own journal
and MLflow store) on the default pipeline with the bundled sample, export off and pruning off,
so every trial is a full walk-forward and the two runs are comparable. Throughput counts
trials only: it is read from the trials' own start and completion times in the journal, not
from the wall time, which also holds process start-up, data loading and the final hold-out
evaluation. Nothing here asserts a speed-up; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightgbm
import optuna
from optuna.trial import TrialState

from mlalgo.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "train.yaml"
SAMPLE = ROOT / "data" / "sample"
WORKERS = (1, 2)
OVERRIDES = (
    f"stages.fetch.path={SAMPLE}",
    "stages.export.enabled=false",
    "tune.pruner=none",  # every trial a full walk-forward: comparable across runs
)


@dataclass(frozen=True)
class Result:
    workers: int
    trials: int  # complete + pruned
    wall: float  # seconds, the whole command
    span: float  # seconds, first trial start to last trial completion
    mean_trial: float  # seconds

    @property
    def per_minute(self) -> float:
        return self.trials / (self.span / 60.0)


def busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs' time spent busy over ``seconds`` (from /proc/stat; None elsewhere).

    Other work on the machine skews both runs, the 1-worker one most (LightGBM on every core
    slows sharply when a core is taken), so the table is read with this figure in mind.
    """

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else None


def run_tune(workers: int, trials: int) -> Result:
    """One ``mlalgo tune`` in a fresh directory; its trials' throughput read from the journal."""
    with tempfile.TemporaryDirectory(prefix=f"bench-tune-{workers}-") as tmp:
        journal = Path(tmp) / "tune.journal"
        mlflow_config = Path(tmp) / "mlflow.yaml"
        mlflow_config.write_text("tracking_uri: sqlite:///mlruns.db\nexperiment: bench\n")
        name = f"bench-{workers}"
        cmd = [
            sys.executable,
            "-m",
            "mlalgo",
            "tune",
            str(PIPELINE),
            "--trials",
            str(trials),
            "--workers",
            str(workers),
            "--storage",
            f"journal:{journal}",
            "--study",
            name,
            "--mlflow-config",
            str(mlflow_config),
            *(arg for o in OVERRIDES for arg in ("--set", o)),
        ]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"mlalgo tune --workers {workers} exited with {proc.returncode}:")
            print(proc.stdout)
            print(proc.stderr, file=sys.stderr)
            sys.exit(proc.returncode or 1)
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        )
        study = optuna.load_study(study_name=name, storage=storage)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if not done:
            sys.exit(f"mlalgo tune --workers {workers}: no complete trial in the journal")
        first = min(t.datetime_start for t in done)
        last = max(t.datetime_complete for t in done)
        durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
        return Result(
            workers,
            len(done),
            wall,
            (last - first).total_seconds(),
            sum(durations) / len(durations),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per worker count")
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    n_jobs = load_pipeline(PIPELINE, OVERRIDES).stages.train.n_jobs
    print(
        f"{platform.processor() or platform.machine()}, {cpus} CPUs, "
        f"Python {platform.python_version()}, optuna {optuna.__version__}, "
        f"LightGBM {lightgbm.__version__}"
    )
    print(
        f"{PIPELINE.relative_to(ROOT)} on {SAMPLE.relative_to(ROOT)}, {args.trials} trials, "
        "pruner none, export off"
    )
    print(
        f"threads: with 1 worker the trials run in the driver with stages.train.n_jobs = {n_jobs};"
        f"\nwith K > 1 the driver passes --threads cpu_count // K, so LightGBM in each worker gets"
        f"\n{cpus} // K threads: on a {cpus}-core machine K workers split the cores, adding none\n"
    )
    busy = busy_share()
    if busy is not None:
        print(f"CPU busy in the second before the runs: {busy:.0%}")
        if busy > 0.2:
            print("warning: other processes are running; they skew both runs")
        print()
    results = [run_tune(k, args.trials) for k in WORKERS]
    print(
        f"{'workers':>7} {'trials':>6} {'wall s':>8} {'span s':>9} {'mean trial s':>13}"
        f" {'trials/min':>11}"
    )
    for r in results:
        print(
            f"{r.workers:>7} {r.trials:>6} {r.wall:>8.1f} {r.span:>9.1f} {r.mean_trial:>13.2f}"
            f" {r.per_minute:>11.1f}"
        )
    one, two = results
    print(f"\nratio 2 workers / 1 worker: {two.per_minute / one.per_minute:.2f}")


if __name__ == "__main__":
    main()
