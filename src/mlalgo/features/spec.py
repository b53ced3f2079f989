"""The FeatureSpec: features as data, so one definition drives research, the bundle and live.

A spec is a tuple of feature definitions. It has no code in it, serialises to JSON (it travels
inside the signal-model bundle) and has a stable hash that MLflow records, so a model can only be
served with the features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

Column = Literal["open", "high", "low", "close", "volume"]


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    input: Column = "close"

    @property
    def name(self) -> str:
        """Column name in feature frames and in the model: stable, human-readable."""
        params = "_".join(
            str(v) for k, v in self.model_dump().items() if k not in ("feature", "input")
        )
        return f"{self.feature}_{params}{self._suffix()}"  # type: ignore[attr-defined]

    @property
    def warmup(self) -> int:
        """Index of the first bar with a value; every bar before it is NaN."""
        raise NotImplementedError

    @property
    def columns(self) -> tuple[Column, ...]:
        """The bar columns this feature reads, in the order both engines pass them."""
        return (self.input,)

    def _suffix(self) -> str:
        return "" if self.input == "close" else f"_{self.input}"


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
        return f"ar1_zscore_{self.window}{'' if self.log else '_raw'}{self._suffix()}"

    @property
    def warmup(self) -> int:
        return self.window


class ZScore(_Feature):
    """(x - SMA(x, n)) / std(x, n), population std: where x sits in its recent distribution.

    Scale-free, so it pools across symbols. With ``input: volume`` it is the volume z-score: how
    unusual this bar's volume is against the last ``n`` bars, whatever the symbol's typical size.
    NaN where the window is flat (std 0): a constant series has no distribution to sit in.
    """

    feature: Literal["zscore"] = "zscore"
    n: Annotated[int, Field(ge=2)]

    @property
    def warmup(self) -> int:
        return self.n - 1


class SimpleReturn(_Feature):
    """x[t] / x[t-k] - 1, the simple return over k bars (what a position held k bars earns)."""

    feature: Literal["return"] = "return"
    k: PositiveInt = 1

    @property
    def warmup(self) -> int:
        return self.k


class _MAPair(_Feature):
    """A fast and a slow moving average of the same kind; fast < slow, or the pair is no signal."""

    fast: PositiveInt
    slow: PositiveInt
    kind: Literal["sma", "ema"] = "sma"

    @field_validator("slow")
    @classmethod
    def _slow_after_fast(cls, slow: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast")
        if fast is not None and slow <= fast:
            raise ValueError(f"slow must be greater than fast={fast}")
        return slow

    @property
    def name(self) -> str:
        pair = f"{self.kind}_{self.fast}_{self.slow}{self._suffix()}"
        return f"{self.feature}_{pair}"  # type: ignore[attr-defined]

    @property
    def warmup(self) -> int:
        return self.slow - 1


class MASpread(_MAPair):
    """MA(fast) / MA(slow) - 1: trend strength as a fraction, comparable across price levels."""

    feature: Literal["ma_spread"] = "ma_spread"


class MACross(_MAPair):
    """Crossover state: +1 while MA(fast) is above MA(slow), -1 below, 0 when they are equal.

    "Equal" means within 1e-10 x |MA(slow)| (``kernels.CROSS_TIE``): closer than that is rounding,
    as in a flat market, where a strict sign would flip on noise. Both engines compute the two
    averages with the same operations (``kernels.crossover``), so they always read the same state.
    """

    feature: Literal["ma_cross"] = "ma_cross"


class BollingerB(_Feature):
    """Bollinger %b: 0 on the lower band SMA - k std, 1 on the upper; NaN on a flat window."""

    feature: Literal["bollinger_b"] = "bollinger_b"
    n: Annotated[int, Field(ge=2)] = 20
    k: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2.0

    @property
    def name(self) -> str:
        return f"bollinger_b_{self.n}_{self.k!r}{self._suffix()}"

    @property
    def warmup(self) -> int:
        return self.n - 1


class ATR(_Feature):
    """Wilder's average true range over n bars, divided by close unless ``normalize: false``.

    Reads high, low and close (``columns``), so ``input`` stays ``close``. Normalised (TA-Lib's
    NATR / 100) it is a fraction of price, comparable across symbols; raw it is in price units
    and named ``atr_<n>_raw``.
    """

    feature: Literal["atr"] = "atr"
    n: PositiveInt = 14
    normalize: bool = True

    @field_validator("input")
    @classmethod
    def _reads_hlc(cls, value: str) -> str:
        if value != "close":
            raise ValueError("atr reads high, low and close, so input must stay 'close'")
        return value

    @property
    def name(self) -> str:
        return f"atr_{self.n}{'' if self.normalize else '_raw'}"

    @property
    def columns(self) -> tuple[Column, ...]:
        return ("high", "low", "close")

    @property
    def warmup(self) -> int:
        return self.n


FeatureDef = Annotated[
    RSI
    | DistSMA
    | DistEMA
    | Volatility
    | LogReturn
    | AR1ZScore
    | ZScore
    | SimpleReturn
    | MASpread
    | MACross
    | BollingerB
    | ATR,
    Field(discriminator="feature"),
]
FEATURE_TYPES: tuple[type[_Feature], ...] = (
    RSI,
    DistSMA,
    DistEMA,
    Volatility,
    LogReturn,
    AR1ZScore,
    ZScore,
    SimpleReturn,
    MASpread,
    MACross,
    BollingerB,
    ATR,
)

_SPEC_ADAPTER: TypeAdapter[tuple[FeatureDef, ...]] = TypeAdapter(tuple[FeatureDef, ...])


class FeatureSpec(BaseModel):
    """An ordered, named, hashable list of feature definitions."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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
