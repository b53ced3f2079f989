"""The champion/challenger gate: a new model reaches ``@champion`` only when it has earned it.

Both models are traded from flat over the same window, the most recent bars, which start after
the challenger's hold-out cut (and after the end of every label the champion trained on), under
the challenger's execution (the cost model it will trade with). The challenger is promoted only
when every check passes:

1. its metrics are finite;
2. it made at least ``min_trades`` trades;
3. its deflated Sharpe ratio (the probability that its true Sharpe ratio is positive, deflated
   for having picked the better of two) is at least ``min_dsr``;
4. its max drawdown is within ``max_drawdown``;
5. it beats the champion's ``metric`` by more than ``margin`` (no champion: nothing to beat).

:func:`judge` is that rule alone, pure; :func:`promote` fetches, evaluates, decides, moves the
alias and logs the decision as an MLflow run with tags, whichever way it went.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlalgo.backtest.sharpe_stats import expected_max_sharpe, sharpe_moments
from mlalgo.bundle import Bundle, RegistryError, load_bundle
from mlalgo.config import PipelineConfig, PromoteConfig
from mlalgo.registry import (
    CHAMPION,
    PREVIOUS_TAG,
    ModelRef,
    alias_version,
    download_bundle,
    get_version,
)
from mlalgo.tracking import Tracker

log = logging.getLogger(__name__)

GATED = ("sharpe", "total_return", "max_drawdown", "n_trades", "dsr")
ROLLED_BACK_TAG = "mlalgo.rolled_back"


@dataclass(frozen=True)
class Evaluation:
    version: str
    metrics: dict[str, float]
    returns: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Decision:
    verdict: str  # promote | reject | rollback
    reason: str
    name: str
    challenger: Evaluation | None
    champion: Evaluation | None
    window: tuple[pd.Timestamp, pd.Timestamp] | None
    checks: dict[str, bool]
    run_id: str = ""

    @property
    def promoted(self) -> bool:
        return self.verdict in ("promote", "rollback")

    def summary(self) -> str:
        lines = [f"{self.name}: {self.verdict.upper()}: {self.reason}"]
        if self.window is not None:
            lines.append(f"window {self.window[0]:%Y-%m-%d} .. {self.window[1]:%Y-%m-%d}")
        for who, ev in (("challenger", self.challenger), ("champion", self.champion)):
            if ev is not None:
                cells = "  ".join(f"{k} {ev.metrics.get(k, math.nan):.4g}" for k in GATED)
                lines.append(f"{who:10} v{ev.version}  {cells}")
        lines.extend(f"  [{'x' if ok else ' '}] {name}" for name, ok in self.checks.items())
        return "\n".join(lines)


def judge(
    challenger: dict[str, float], champion: dict[str, float] | None, gate: PromoteConfig
) -> tuple[bool, str, dict[str, bool]]:
    """Apply the gate to two sets of window metrics; return (promote, reason, checks)."""
    key = gate.metric
    values = [challenger.get(k, math.nan) for k in {*GATED, key}]
    checks = {"finite metrics": all(math.isfinite(v) for v in values)}
    reasons = {"finite metrics": "challenger has non-finite metrics on the window"}
    n_trades = challenger.get("n_trades", 0.0)
    checks["min trades"] = n_trades >= gate.min_trades
    reasons["min trades"] = f"{n_trades:.0f} trades < min_trades {gate.min_trades}"
    dsr = challenger.get("dsr", math.nan)
    checks["deflated Sharpe"] = dsr >= gate.min_dsr
    reasons["deflated Sharpe"] = f"DSR {dsr:.3f} < min_dsr {gate.min_dsr}"
    dd = -challenger.get("max_drawdown", math.nan)
    checks["max drawdown"] = dd <= gate.max_drawdown
    reasons["max drawdown"] = f"max drawdown {dd:.1%} > limit {gate.max_drawdown:.1%}"
    mine = challenger.get(key, math.nan)
    if champion is None:
        checks["beats champion"] = True
        win = f"no champion yet; passes every gate ({key} {mine:.4g}, DSR {dsr:.3f})"
    else:
        theirs = champion.get(key, math.nan)
        # A champion whose metric is not finite (no trades on the window) is beaten by any
        # challenger that passes the gates.
        checks["beats champion"] = not math.isfinite(theirs) or mine > theirs + gate.margin
        reasons["beats champion"] = (
            f"{key} {mine:.4g} does not beat champion's {theirs:.4g} + margin {gate.margin}"
        )
        win = f"{key} {mine:.4g} beats champion's {theirs:.4g} + margin {gate.margin}"
    failed = [reasons[name] for name, ok in checks.items() if not ok]
    return not failed, "; ".join(failed) or win, checks


def evaluate(
    cfg: PipelineConfig,
    bars: pd.DataFrame,
    bundle: Bundle,
    start: pd.Timestamp,
    execution: Any,
) -> Evaluation:
    """Trade ``bundle`` from flat on bars from ``start`` under ``execution``."""
    from mlalgo.pipeline import backtest_window
    from mlalgo.scoring import score

    missing = sorted(set(bundle.symbols) - set(bars.index.get_level_values("symbol")))
    if missing:
        raise ValueError(
            f"the evaluation bars lack {', '.join(missing)}, which v{bundle.version} trades"
        )
    held = bars.index.get_level_values("symbol").isin(bundle.symbols or bars.index.levels[0])
    bars = bars.loc[held]
    proba = score(bundle, bars)["p_up"].to_numpy()
    _, result = backtest_window(
        cfg, bars, proba, start, buy_hold=False, policy=bundle.policy, execution=execution
    )
    metrics = {k: float(v) for k, v in result.metrics.items()}
    return Evaluation(str(bundle.version), metrics, result.returns.to_numpy())


def window_start(bars: pd.DataFrame, challenger: Bundle, champion: Bundle | None) -> pd.Timestamp:
    """First bar after the challenger's hold-out cut and after every label either trained on."""
    cut = challenger.manifest.get("holdout_start")
    if not cut:
        raise ValueError(
            f"v{challenger.version} was exported without a hold-out (export.holdout_bars: 0): "
            "it trained on every bar, so no window is out of sample for it"
        )
    start = pd.Timestamp(cut)
    for b in (challenger, champion):
        if b is None:
            continue
        end = (b.manifest.get("training_range") or {}).get("label_end")
        if end and pd.Timestamp(end) >= start:
            times = bars.index.get_level_values("time")
            later = times[times > pd.Timestamp(end)]
            start = later.min() if len(later) else pd.Timestamp(end)
    return start


def deflate(challenger: Evaluation, champion: Evaluation | None) -> float:
    """The challenger's PSR against the best Sharpe ratio expected from the trials compared."""
    moments = sharpe_moments(challenger.returns)
    if moments is None:
        return math.nan
    if champion is None:
        return moments.psr(0.0)
    other = sharpe_moments(champion.returns)
    sharpes = [moments.sharpe] + ([other.sharpe] if other is not None else [])
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    return moments.psr(expected_max_sharpe(len(sharpes), variance))


def promote(
    cfg: PipelineConfig,
    bars: pd.DataFrame,
    tracker: Tracker,
    name: str,
    challenger: str | None = None,
    *,
    root: str | Path = ".",
    gate: PromoteConfig | None = None,
) -> Decision:
    """Judge ``name``'s challenger (a version, or ``@challenger``) against ``@champion`` and move
    the alias if it passes; every decision is logged as a run and tagged on the version."""
    gate = gate or cfg.stages.promote
    client = tracker.client()
    ref = ModelRef(name, version=challenger) if challenger else ModelRef(name, alias="challenger")
    new = get_version(client, ref)
    old = alias_version(client, name, CHAMPION)
    cache = Path(root) / ".mlalgo" / "registry"
    new_bundle = load_bundle(download_bundle(tracker, new, cache))
    old_bundle = load_bundle(download_bundle(tracker, old, cache)) if old else None
    if old is not None and old.version == new.version:
        return _log(
            tracker,
            cfg,
            Decision(
                "reject", f"v{new.version} is already the champion", name, None, None, None, {}
            ),
            new,
            old,
        )
    if (new.tags or {}).get(ROLLED_BACK_TAG):
        return _log(
            tracker,
            cfg,
            Decision(
                "reject",
                f"v{new.version} was rolled back ({new.tags[ROLLED_BACK_TAG]}); promote another",
                name,
                None,
                None,
                None,
                {},
            ),
            new,
            old,
        )
    start = window_start(bars, new_bundle, old_bundle)
    execution = new_bundle.execution
    ch = evaluate(cfg, bars, new_bundle, start, execution)
    cp = evaluate(cfg, bars, old_bundle, start, execution) if old_bundle else None
    ch.metrics["dsr"] = deflate(ch, cp)
    ok, reason, checks = judge(ch.metrics, cp.metrics if cp else None, gate)
    end = bars.index.get_level_values("time").max()
    decision = Decision("promote" if ok else "reject", reason, name, ch, cp, (start, end), checks)
    if ok:
        client.set_registered_model_alias(name, CHAMPION, new.version)
        if old is not None:
            client.set_model_version_tag(name, new.version, PREVIOUS_TAG, old.version)
    return _log(tracker, cfg, decision, new, old)


def rollback(tracker: Tracker, name: str, *, reason: str = "manual rollback") -> Decision:
    """Point ``@champion`` back at the version it replaced; mark the demoted one."""
    client = tracker.client()
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name}: no @champion to roll back")
    previous = (current.tags or {}).get(PREVIOUS_TAG)
    if not previous:
        raise RegistryError(
            f"{name}: @champion v{current.version} replaced no earlier champion; nothing to "
            "roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, current.version, ROLLED_BACK_TAG, reason)
    decision = Decision(
        "rollback",
        f"@champion v{current.version} -> v{previous}: {reason}",
        name,
        None,
        None,
        None,
        {},
    )
    return _log(tracker, None, decision, client.get_model_version(name, previous), current)


def _log(
    tracker: Tracker, cfg: PipelineConfig | None, decision: Decision, new: Any, old: Any
) -> Decision:
    """The decision as an MLflow run and as tags on the challenger's version."""
    tags = {
        "mlalgo.kind": "promotion",
        "mlalgo.model": decision.name,
        "mlalgo.decision": decision.verdict,
        "mlalgo.reason": decision.reason[:5000],
        "mlalgo.challenger_version": str(new.version),
        "mlalgo.champion_version": str(old.version) if old is not None else "",
    }
    if decision.window is not None:
        tags["mlalgo.window"] = (
            f"{decision.window[0].isoformat()}..{decision.window[1].isoformat()}"
        )
    if cfg is not None:
        tags["mlalgo.pipeline"] = cfg.name
    with tracker.run(f"{decision.verdict}-{decision.name}-v{new.version}", tags) as run:
        for who, ev in (("challenger", decision.challenger), ("champion", decision.champion)):
            if ev is not None:
                run.metrics({f"{who}_{k}": v for k, v in ev.metrics.items()})
        if cfg is not None:
            run.dict(cfg.stages.promote.model_dump(mode="json"), "promotion/gate.json")
        run.dict({k: bool(v) for k, v in decision.checks.items()}, "promotion/checks.json")
        run.text(decision.summary() + "\n", "promotion/decision.txt")
    client = tracker.client()
    client.set_model_version_tag(
        decision.name, str(new.version), "mlalgo.decision", decision.verdict
    )
    client.set_model_version_tag(
        decision.name, str(new.version), "mlalgo.reason", decision.reason[:5000]
    )
    client.set_model_version_tag(decision.name, str(new.version), "mlalgo.decision_run", run.run_id)
    log.info("%s", decision.summary())
    return dataclasses.replace(decision, run_id=run.run_id)
