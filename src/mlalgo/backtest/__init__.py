"""Backtesting: the numba engine, metrics, evidence, stress tests and the tearsheet.

``mlalgo.backtest.run(bars, target, config)`` is the entry point; it is imported lazily
because :mod:`mlalgo.config` itself imports the cost model from this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlalgo.backtest.runner import BacktestResult, run

__all__ = ["BacktestResult", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlalgo.backtest import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'mlalgo.backtest' has no attribute {name!r}")
