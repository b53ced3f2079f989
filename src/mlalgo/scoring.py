"""A bundle applied to bars: P(up), the decided target and its account weight per bar.

One function serves ``mlalgo predict``, the MLflow pyfunc model and the promotion gate, so a
signal served over HTTP, printed on the command line and judged for promotion is the same
number. Rows still warming up get NaN (no decision), as in the backtest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlalgo.bars import COLUMNS, validate
from mlalgo.bundle import Bundle
from mlalgo.features.batch import compute
from mlalgo.policy import DecisionPolicy, decide, realised_volatility

SIGNAL_COLUMNS = ("p_up", "target", "weight")


def symbol_volatility(bars: pd.DataFrame, window: int, periods_per_year: float) -> np.ndarray:
    """Each symbol's realised volatility at each close, aligned with ``bars``."""
    vol = bars.groupby(level="symbol", sort=False)["close"].transform(
        lambda c: pd.Series(realised_volatility(c.to_numpy(), window, periods_per_year), c.index)
    )
    return vol.to_numpy()


def decide_bars(
    bars: pd.DataFrame, proba: np.ndarray, policy: DecisionPolicy, periods_per_year: float
) -> np.ndarray:
    """``decide`` over bars, with each symbol's realised volatility when the policy targets it."""
    vol = None
    if policy.vol_target is not None:
        vol = symbol_volatility(bars, policy.vol_window, periods_per_year)
    return decide(proba, policy, vol)


def score(bundle: Bundle, bars: pd.DataFrame) -> pd.DataFrame:
    """``p_up``, ``target`` (the symbol's exposure) and ``weight`` (target / number of symbols
    the bundle trades: the fraction of the account the backtest holds) for every bar."""
    features = compute(bundle.spec, bars)
    x = features.to_numpy(dtype=np.float64)
    ready = ~np.isnan(x).any(axis=1)
    proba = np.full(len(x), np.nan)
    if ready.any():
        proba[ready] = bundle.predict_proba(x[ready])
    ppy = float(bundle.manifest.get("periods_per_year") or 252)
    target = decide_bars(bars, proba, bundle.policy, ppy)
    n = max(len(bundle.symbols), 1)
    return pd.DataFrame({"p_up": proba, "target": target, "weight": target / n}, index=bars.index)


def bars_from_records(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A flat table of bars (``time``, ``symbol``, OHLCV; a request body) in the bar schema,
    through the same validation as every other edge."""
    missing = [c for c in ("time", "symbol", *COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    flat = frame.loc[:, ["symbol", "time", *COLUMNS]].copy()
    flat["time"] = pd.to_datetime(flat["time"], utc=True)
    flat["symbol"] = flat["symbol"].astype(str)
    bars = flat.set_index(["symbol", "time"]).sort_index()
    return validate(bars, source=source)[0]


def signal_records(bundle: Bundle, frame: pd.DataFrame, source: str = "request") -> pd.DataFrame:
    """Bars in, one row per bar with a decision out: ``time, symbol, p_up, target, weight``.

    Times are UTC; a time without a zone is read as UTC, and answers carry none (MLflow's
    schemas hold zone-naive datetimes only).
    """
    scored = score(bundle, bars_from_records(frame, source))
    out = scored[scored["p_up"].notna()].reset_index()
    out["time"] = out["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    return out.loc[:, ["time", "symbol", *SIGNAL_COLUMNS]]


def example_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """A bundle's input example as the DataFrame a pyfunc receives (zone-naive UTC times)."""
    frame = pd.DataFrame.from_records(records)
    frame["time"] = pd.to_datetime(frame["time"], utc=True).dt.tz_localize(None)
    return frame
