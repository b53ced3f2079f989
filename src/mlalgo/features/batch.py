"""The batch feature engine: a FeatureSpec over bar frames, one vectorised kernel call per feature.

Features are computed per symbol, so no value ever mixes two instruments, and the result keeps
the bars' (symbol, time) index. The kernels are pure and causal (see the kernels package);
this module only routes columns to them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mlalgo.features import kernels
from mlalgo.features.spec import (
    ATR,
    RSI,
    AR1ZScore,
    BollingerB,
    DistEMA,
    DistSMA,
    FeatureSpec,
    LogReturn,
    MACross,
    MASpread,
    SimpleReturn,
    Volatility,
    ZScore,
    _Feature,
)

# (feature, *its columns) -> values; the columns come in ``feature.columns`` order.
Kernel = Callable[..., np.ndarray]


def _ar1_zscore(f: AR1ZScore, x: np.ndarray) -> np.ndarray:
    return kernels.ar1_zscore(np.log(x) if f.log else x, f.window)


def _atr(f: ATR, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    out = kernels.atr(high, low, close, f.n)
    if f.normalize:
        np.divide(out, close, out=out)
    return out


KERNELS: dict[type[_Feature], Kernel] = {
    RSI: lambda f, x: kernels.rsi(x, f.n),
    DistSMA: lambda f, x: kernels.dist_ma(x, f.n, "sma"),
    DistEMA: lambda f, x: kernels.dist_ma(x, f.n, "ema"),
    Volatility: lambda f, x: kernels.realised_vol(x, f.n),
    LogReturn: lambda f, x: kernels.log_return(x, f.k),
    AR1ZScore: _ar1_zscore,
    ZScore: lambda f, x: kernels.zscore(x, f.n),
    SimpleReturn: lambda f, x: kernels.simple_return(x, f.k),
    MASpread: lambda f, x: kernels.ma_spread(x, f.fast, f.slow, f.kind),
    MACross: lambda f, x: kernels.ma_cross(x, f.fast, f.slow, f.kind),
    BollingerB: lambda f, x: kernels.bollinger_b(x, f.n, f.k),
    ATR: _atr,
}


def compute_arrays(spec: FeatureSpec, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Feature matrix (bars x features) for one symbol's columns; NaN during warm-up."""
    n = len(columns["close"])
    out = np.empty((n, len(spec.features)), dtype=np.float64)
    for j, feature in enumerate(spec.features):
        out[:, j] = KERNELS[type(feature)](feature, *(columns[c] for c in feature.columns))
    return out


def compute(spec: FeatureSpec, bars: pd.DataFrame) -> pd.DataFrame:
    """Features for every bar, per symbol, indexed like ``bars``; columns are ``spec.names``."""
    parts = []
    for _, group in bars.groupby(level="symbol", sort=False):
        cols = {
            c: group[c].to_numpy(dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")
        }
        parts.append(
            pd.DataFrame(compute_arrays(spec, cols), index=group.index, columns=spec.names)
        )
    return pd.concat(parts)
