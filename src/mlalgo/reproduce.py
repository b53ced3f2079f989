"""Rerun a tracked run from what it logged and compare every metric exactly.

A run logs its resolved config, config and data hashes, git commit and package versions. This
module reloads that config, checks the data still hash the same, reruns the pure research step
(no new MLflow run, no bundle) and compares each logged metric for equality: same config plus
same data must give the same numbers (invariant 9), and when they do not, the notes say which
of the recorded inputs differ.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from mlalgo.config import ConfigError, PipelineConfig
from mlalgo.pipeline import (
    data_hash,
    holdout_metrics,
    load_bars,
    package_versions,
    research,
    run_metrics,
)
from mlalgo.report import evidence_metrics
from mlalgo.tracking import Tracker, git_info


@dataclass(frozen=True)
class Reproduction:
    run_id: str
    logged: dict[str, float]
    reproduced: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[str]:
        keys = sorted(set(self.logged) | set(self.reproduced))
        return [k for k in keys if not _same(self.logged.get(k), self.reproduced.get(k))]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        lines = [
            f"run {self.run_id}: {len(self.logged)} logged metrics, {len(self.mismatches)} differ"
        ]
        for key in self.mismatches:
            lines.append(
                f"  {key}: logged {self.logged.get(key)!r}, reproduced {self.reproduced.get(key)!r}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("REPRODUCED exactly" if self.ok else "DIFFERENT")
        return "\n".join(lines)


def reproduce(run_id: str, tracker: Tracker, root: str | Path = ".") -> Reproduction:
    client = tracker.client()
    run = client.get_run(run_id)
    tags = run.data.tags
    if tags.get("mlalgo.kind") == "study":
        raise ConfigError(
            f"run {run_id} is a tuning study's parent run; reproduce one of its trial runs or "
            "its holdout-trial run (the nested runs beneath it)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config/pipeline.yaml", tmp)
        except Exception:
            raise ConfigError(
                f"run {run_id} has no config/pipeline.yaml to reproduce from"
            ) from None
        cfg = PipelineConfig.model_validate(yaml.safe_load(Path(path).read_text()))
    notes = []
    if cfg.hash != tags.get("mlalgo.config_hash"):
        notes.append(
            f"config hash {cfg.hash[:12]} differs from the logged "
            f"{tags.get('mlalgo.config_hash', '?')[:12]}"
        )
    bars, _ = load_bars(cfg)
    dhash = data_hash(bars)
    if dhash != tags.get("mlalgo.data_hash"):
        notes.append(
            f"the data changed since the run: hash {dhash[:12]}, logged "
            f"{tags.get('mlalgo.data_hash', '?')[:12]}"
        )
    git = git_info(root)
    if git.get("mlalgo.git_sha") and git["mlalgo.git_sha"] != tags.get("mlalgo.git_sha"):
        notes.append(
            f"code is at {git['mlalgo.git_sha'][:10]}, the run was at "
            f"{tags.get('mlalgo.git_sha', '?')[:10]}"
        )
    logged_versions = json.loads(tags.get("mlalgo.versions", "{}"))
    changed = {
        k: (v, package_versions().get(k))
        for k, v in logged_versions.items()
        if package_versions().get(k) != v
    }
    if changed:
        notes.append(
            "package versions differ: "
            + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
        )
    res = research(cfg, bars)
    reproduced = run_metrics(res, cfg.stages.backtest.initial_cash)
    if "permutation_p_value" in run.data.metrics:
        reproduced |= evidence_metrics(cfg, bars, res)
    if "mlalgo.holdout_start" in tags and "holdout_sharpe" in run.data.metrics:
        start = pd.Timestamp(tags["mlalgo.holdout_start"])
        reproduced |= holdout_metrics(cfg, bars, res, start)
    skipped = set(tags.get("mlalgo.nonfinite_metrics", "").split(",")) - {""}
    reproduced = {k: v for k, v in reproduced.items() if k not in skipped}
    # A trial's per-fold series (fold/*) are running values; their last points are the totals.
    logged = {k: v for k, v in run.data.metrics.items() if not k.startswith("fold/")}
    return Reproduction(run_id, logged, reproduced, notes)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))
