"""The FeatureSpec: features as data, so one definition drives research, the bundle and live.

A spec is a tuple of feature definitions. It has no code in it, serialises to JSON (it travels
inside the signal-model bundle) and has a stable hash that MLflow records, so a model can only be
served with the features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, TypeAdapter, model_validator

Column = Literal["open", "high", "low", "close", "volume"]


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Column = "close"

    @property
    def name(self) -> str:
        """Column name in feature frames and in the model: stable, human-readable."""
        params = "_".join(
            str(v) for k, v in self.model_dump().items() if k not in ("feature", "input")
        )
        suffix = "" if self.input == "close" else f"_{self.input}"
        return f"{self.feature}_{params}{suffix}"  # type: ignore[attr-defined]

    @property
    def warmup(self) -> int:
        """Index of the first bar with a value; every bar before it is NaN."""
        raise NotImplementedError


class RSI(_Feature):
    """Wilder's RSI as TA-Lib computes it."""

    feature: Literal["rsi"] = "rsi"
    n: PositiveInt = 14

    @property
    def warmup(self) -> int:
        return self.n


class DistSMA(_Feature):
    """input / SMA(input, n) - 1: how stretched price is from its mean, scale-free."""

    feature: Literal["dist_sma"] = "dist_sma"
    n: PositiveInt

    @property
    def warmup(self) -> int:
        return self.n - 1


class DistEMA(_Feature):
    """input / EMA(input, n) - 1, with TA-Lib's SMA seeding."""

    feature: Literal["dist_ema"] = "dist_ema"
    n: PositiveInt

    @property
    def warmup(self) -> int:
        return self.n - 1


class Volatility(_Feature):
    """Population std of the last n one-bar log returns (not annualised)."""

    feature: Literal["volatility"] = "volatility"
    n: Annotated[int, Field(ge=2)]

    @property
    def warmup(self) -> int:
        return self.n


class LogReturn(_Feature):
    """ln(x[t] / x[t-k])."""

    feature: Literal["log_return"] = "log_return"
    k: PositiveInt = 1

    @property
    def warmup(self) -> int:
        return self.k


class AR1ZScore(_Feature):
    """Residual z-score of a rolling AR(1) fit X[t+1] = a + b·X[t] + e, on log prices by default.

    A large negative z says the last move fell further than the recent mean-reverting dynamics
    explain, which is the mean-reversion signal.
    """

    feature: Literal["ar1_zscore"] = "ar1_zscore"
    window: Annotated[int, Field(ge=3)] = 60
    log: bool = True

    @property
    def name(self) -> str:
        suffix = "" if self.input == "close" else f"_{self.input}"
        return f"ar1_zscore_{self.window}{'' if self.log else '_raw'}{suffix}"

    @property
    def warmup(self) -> int:
        return self.window


FeatureDef = Annotated[
    RSI | DistSMA | DistEMA | Volatility | LogReturn | AR1ZScore,
    Field(discriminator="feature"),
]
FEATURE_TYPES: tuple[type[_Feature], ...] = (
    RSI,
    DistSMA,
    DistEMA,
    Volatility,
    LogReturn,
    AR1ZScore,
)

_SPEC_ADAPTER: TypeAdapter[tuple[FeatureDef, ...]] = TypeAdapter(tuple[FeatureDef, ...])


class FeatureSpec(BaseModel):
    """An ordered, named, hashable list of feature definitions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[FeatureDef, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def warmup(self) -> int:
        """Bars of history needed before every feature has a value."""
        return max((f.warmup for f in self.features), default=0)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys and no whitespace, so equal specs hash equally."""
        payload = [f.model_dump(mode="json") for f in self.features]
        return json.dumps({"features": payload}, sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data = json.loads(text)
        return cls(features=_SPEC_ADAPTER.validate_python(data["features"]))

    @model_validator(mode="after")
    def _unique(self) -> FeatureSpec:
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate features: {', '.join(dupes)}; list each feature once")
        return self
