"""What lets K workers split one machine: thread counts never change a trial's result."""

from __future__ import annotations

import pytest

from mlalgo.pipeline import research, run_metrics
from mlalgo.tuning.worker import prepare, worker_seed


@pytest.mark.parametrize("model", ["lightgbm", "hist_gbm"])
def test_thread_count_does_not_change_a_trial(tune_cfg, model: str) -> None:
    prep = prepare(tune_cfg(f"stages.train.model={model}"), "test")
    results = []
    for threads in (1, 2):
        sized = prep.with_threads(threads)
        assert sized.tuning_cfg.stages.train.n_jobs == threads
        res = research(sized.tuning_cfg, sized.tuning_bars)
        results.append((run_metrics(res, 1e5), res.walk_forward.proba))
    (m1, p1), (m2, p2) = results
    assert m1 == m2
    assert p1.equals(p2)
    assert len(research(prep.tuning_cfg, prep.tuning_bars).walk_forward.folds) == prep.n_folds


def test_each_worker_and_each_resume_draws_its_own_seed(tune_cfg) -> None:
    cfg = tune_cfg()
    seeds = {worker_seed(cfg, w, n) for w in range(4) for n in (0, 6, 12)}
    assert len(seeds) == 12
    assert worker_seed(cfg, 1, 6) == worker_seed(cfg, 1, 6)
