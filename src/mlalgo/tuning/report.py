"""A study's verdict as a person reads it: the best trial, how much to trust it, the hold-out."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import yaml

from mlalgo.tuning.study import Verdict

_HOLDOUT_ROWS = (
    ("sharpe", "Sharpe", "num"),
    ("psr", "P(Sharpe > 0)", "pct"),
    ("total_return", "total return", "pct"),
    ("max_drawdown", "max drawdown", "pct"),
    ("n_trades", "trades", "int"),
)


def render(v: Verdict, pipeline: Path, overrides: tuple[str, ...], tracking_uri: str) -> str:
    c = v.counts
    lines = [
        f"study {v.study} ({v.storage}): {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['fail']} failed" + (f", {c['running']} still running" if c["running"] else ""),
    ]
    lines += [
        f"warning: {f}; rerun the same command to finish the study" for f in v.worker_failures
    ]
    if v.best_number is None:
        lines.append("no complete trial yet: nothing to judge")
        return "\n".join(lines)
    lines += [
        "",
        f"best trial {v.best_number}: out-of-sample {v.objective} {v.best_value:.4f} "
        f"(tuning period, after costs)",
        *(f"  {k} = {_value(val)}" for k, val in v.best_params.items()),
        "",
        f"Sharpe {_fmt(v.best_sharpe, 'num')}, P(Sharpe > 0) {_fmt(v.psr, 'pct')}",
        f"deflated Sharpe ratio {_fmt(v.dsr, 'pct')}: the chance the best of {v.dsr_trials} "
        f"trials is real, luck alone reaching Sharpe {_fmt(v.expected_max_sharpe, 'num')}",
        "",
        f"hold-out {v.holdout_range[0]} .. {v.holdout_range[1]} (never seen by tuning):",
        f"{'':16}{'strategy':>12}{'buy & hold':>14}",
    ]
    for key, label, kind in _HOLDOUT_ROWS:
        lines.append(
            f"{label:16}{_fmt(v.holdout.get(f'holdout_{key}'), kind):>12}"
            f"{_fmt(v.holdout.get(f'holdout_buy_hold_{key}'), kind):>14}"
        )
    if v.holdout_reused:
        lines.append("(evaluated when this trial first became best; not evaluated again)")
    if v.holdout_looks > 1:
        lines.append(
            f"note: the hold-out has now judged {v.holdout_looks} different best trials of this "
            "study; each look makes it a little less independent"
        )
    sets = " ".join(f"--set {shlex.quote(f'{k}={_yaml(val)}')}" for k, val in v.best_params.items())
    extra = " ".join(f"--set {shlex.quote(o)}" for o in overrides)
    lines += [
        "",
        f"MLflow parent run {v.parent_run_id}  ({tracking_uri})",
        f"run it:  mlalgo run {shlex.quote(str(pipeline))} {extra + ' ' if extra else ''}{sets}",
    ]
    return "\n".join(lines)


def _yaml(v: object) -> str:
    """As ``--set`` reads it back: full float precision, null, true/false."""
    return yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n").strip()


def _value(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _fmt(value: float | None, kind: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "int":
        return f"{int(value)}"
    return f"{value:.2f}"
