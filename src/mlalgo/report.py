"""A pipeline run's backtest report: evidence metrics, stress tables and the tearsheet.

The report reads the research result only (out-of-sample predictions, the costed backtests),
so it cannot change what a run measured; its evidence metrics are seeded, so ``mlalgo
reproduce`` recomputes them exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlalgo.backtest.evidence import bootstrap_max_drawdown, permutation_test
from mlalgo.backtest.metrics import returns_from_equity
from mlalgo.backtest.stress import cost_stress, period_table, regime_table, scenarios
from mlalgo.backtest.tearsheet import figures, write
from mlalgo.config import PipelineConfig
from mlalgo.data import intervals

if TYPE_CHECKING:
    from mlalgo.pipeline import Research

EVIDENCE_SEED = 0
PERMUTATIONS = 1000

_SUMMARY = (
    "total_return",
    "annual_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "psr",
    "max_drawdown",
    "max_drawdown_duration",
    "profit_factor",
    "hit_rate",
    "avg_win",
    "avg_loss",
    "expectancy",
    "n_trades",
    "exposure",
    "turnover",
)


def _pooled_positions(bars: pd.DataFrame, target: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the exposure decided at each close and the return it earns, stacked.

    The exposure decided at bar j-1's close fills at bar j's open and earns the move to bar
    j+1's open, so bar j's return is ``open[j+1] / open[j] - 1``. A symbol's first return is 0,
    which keeps one symbol's last position from earning the next symbol's first move.
    """
    returns, positions = [], []
    for sym in dict.fromkeys(bars.index.get_level_values("symbol")):
        opens = bars.xs(sym, level="symbol")["open"].to_numpy()
        r = np.zeros(len(opens))
        r[1:-1] = opens[2:] / opens[1:-1] - 1.0
        returns.append(r)
        positions.append(target.xs(sym, level="symbol").ffill().fillna(0.0).to_numpy())
    return np.concatenate(returns), np.concatenate(positions)


def evidence_metrics(cfg: PipelineConfig, bars: pd.DataFrame, res: Research) -> dict[str, float]:
    """Permutation p-value of the signal timing and the bootstrap drawdown distribution.

    The permutation test pools every symbol's bars (one position per symbol-bar) and shuffles
    the positions; at zero cost it tests timing alone, since shuffled positions trade more.
    """
    times = bars.index.get_level_values("time")
    oos = bars.loc[times >= res.strategy.equity.index[0]]
    asset, position = _pooled_positions(oos, res.target.reindex(oos.index))
    perm = permutation_test(asset, position, n=PERMUTATIONS, seed=EVIDENCE_SEED)
    returns = returns_from_equity(res.strategy.equity, cfg.stages.backtest.initial_cash)
    boot = bootstrap_max_drawdown(returns, n=PERMUTATIONS, seed=EVIDENCE_SEED)
    return {
        "permutation_p_value": perm.p_value,
        "permutation_sharpe": perm.observed,
        "max_drawdown_bootstrap_median": boot.quantile(0.5),
        "max_drawdown_bootstrap_p05": boot.quantile(0.05),
    }


def summary_frame(metrics: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "strategy": [metrics.get(k, np.nan) for k in _SUMMARY],
            "buy & hold": [metrics.get(f"buy_hold_{k}", np.nan) for k in _SUMMARY],
        },
        index=list(_SUMMARY),
    )


def stress_tables(
    cfg: PipelineConfig, bars: pd.DataFrame, res: Research
) -> dict[str, pd.DataFrame]:
    bt = cfg.stages.backtest
    ppy = _ppy(cfg)
    times = bars.index.get_level_values("time")
    oos = bars.loc[times >= res.strategy.equity.index[0]]
    costs = cost_stress(oos, res.target.reindex(oos.index), bt, periods_per_year=ppy)
    strat, bench = res.strategy.equity, res.buy_hold.equity
    return {
        "cost_stress": costs[
            ["cost_factor", "total_return", "sharpe", "max_drawdown", "n_trades", "turnover"]
        ],
        "by_year": period_table(strat, bench, periods_per_year=ppy),
        "by_volatility_regime": regime_table(strat, bench, periods_per_year=ppy),
        "crash_windows": scenarios(strat, bench, periods_per_year=ppy),
    }


def write_report(
    cfg: PipelineConfig,
    bars: pd.DataFrame,
    res: Research,
    metrics: dict[str, float],
    out_dir: Path,
    title: str,
) -> tuple[Path, dict[str, pd.DataFrame]]:
    """Write the tearsheet to ``out_dir``; return its path and the stress tables."""
    tables = stress_tables(cfg, bars, res)
    evidence = pd.DataFrame(
        {"value": [metrics.get(k, np.nan) for k in evidence_keys()]}, index=evidence_keys()
    )
    figs = figures(
        res.strategy.equity,
        res.buy_hold.equity,
        res.strategy.trades["pnl"].to_numpy(),
        res.walk_forward.importance,
        title=title,
        periods_per_year=_ppy(cfg),
    )
    path = write(out_dir, title, summary_frame(metrics), figs, {"evidence": evidence, **tables})
    return path, tables


def evidence_keys() -> tuple[str, ...]:
    return (
        "permutation_p_value",
        "permutation_sharpe",
        "max_drawdown_bootstrap_median",
        "max_drawdown_bootstrap_p05",
    )


def _ppy(cfg: PipelineConfig) -> int:
    return intervals.periods_per_year(cfg.stages.fetch.interval, cfg.stages.validate_.calendar)
