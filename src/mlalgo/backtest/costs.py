"""Trading cost model shared by the backtest, hyper-parameter tuning and the paper broker.

Keeping a single definition means a strategy is tuned, evaluated and traded against the same
frictions, so an edge that only exists before costs cannot sneak through one of the stages.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["BPS", "CostModel"]

BPS = 1e-4
"""One basis point as a fraction."""


@dataclass(frozen=True, slots=True)
class CostModel:
    """One cost model shared by the backtest, tuning and the paper broker.

    Parameters
    ----------
    commission_bps : float
        Commission in basis points of traded notional (at the slipped fill price), charged on
        every fill and paid from cash.
    slippage_bps : float
        Adverse price move in basis points applied to every fill: buys pay
        ``price * (1 + s)``, sells receive ``price * (1 - s)``.
    """

    commission_bps: float = 1.0
    slippage_bps: float = 2.0

    def __post_init__(self) -> None:
        for name in ("commission_bps", "slippage_bps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(
                    f"CostModel: {name} must be a number of basis points, got {value!r}"
                )
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"CostModel: {name} must be finite and >= 0 (got {value!r}); "
                    "costs are frictions, pass 0 to switch them off"
                )

    @property
    def commission_rate(self) -> float:
        """Commission as a fraction of traded notional."""
        return self.commission_bps * BPS

    @property
    def slippage_rate(self) -> float:
        """Slippage as a fraction of the reference price."""
        return self.slippage_bps * BPS

    def scaled(self, factor: float) -> CostModel:
        """Return a model with both costs multiplied by ``factor``.

        Used for cost stress tests: an edge that survives ``scaled(2.0)`` is not a cost artefact.
        """
        if not math.isfinite(factor) or factor < 0:
            raise ValueError(
                f"CostModel.scaled: factor must be finite and >= 0 (got {factor!r}); "
                "use e.g. 2.0 to double costs or 0.0 to remove them"
            )
        return CostModel(
            commission_bps=self.commission_bps * factor,
            slippage_bps=self.slippage_bps * factor,
        )
