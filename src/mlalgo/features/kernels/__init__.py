"""Causal feature kernels over 1-D price-like series.

Every kernel returns a new float64 array as long as its input, NaN before its warm-up (each
docstring states it), and its value at index ``t`` depends only on ``x[: t + 1]``. Inputs are
never written to. Each kernel is a thin validating wrapper around a numba loop that writes into
a preallocated output, so a call costs one pass over the data plus a few microseconds.

Where TA-Lib has the same indicator the kernel computes TA-Lib's definition, index for index
(``tests/features/test_talib.py``); ``benchmarks/bench_kernels.py`` times both.

Modules: :mod:`.moving` (sma, ema, dist_ma), :mod:`.dispersion` (rolling_std, bollinger_b,
zscore), :mod:`.wilder` (rsi, atr), :mod:`.returns` (log_return, simple_return, realised_vol),
:mod:`.meanrev` (ar1), :mod:`.crossover` (ma_spread, ma_cross: two averages computed exactly as
their online twins compute them, so a crossover sign can never differ between the engines).
"""

from mlalgo.features.kernels.crossover import CROSS_TIE, ma_cross, ma_spread
from mlalgo.features.kernels.dispersion import bollinger_b, rolling_std, zscore
from mlalgo.features.kernels.meanrev import AR1Fit, ar1, ar1_zscore
from mlalgo.features.kernels.moving import dist_ma, ema, sma
from mlalgo.features.kernels.returns import log_return, realised_vol, simple_return
from mlalgo.features.kernels.wilder import atr, rsi

__all__ = [
    "CROSS_TIE",
    "AR1Fit",
    "ar1",
    "ar1_zscore",
    "atr",
    "bollinger_b",
    "dist_ma",
    "ema",
    "log_return",
    "ma_cross",
    "ma_spread",
    "realised_vol",
    "rolling_std",
    "rsi",
    "simple_return",
    "sma",
    "zscore",
]
