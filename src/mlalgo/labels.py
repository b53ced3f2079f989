"""Labels: the only code allowed to look forward, and each one says exactly how far.

Every label carries its event end (``t1``): the time of the last bar it reads. Cross-validation
uses ``t1`` to purge training samples whose label reaches into a test block. A label at bar t
reads bars ``t+1 .. t + reach`` and nothing else, where ``reach = horizon + 1`` with the
default ``next_open`` entry (the position is entered at the next open) and ``horizon`` with
``close`` entry.

- :func:`forward_return` / fixed horizon: the return a position decided at t earns over h bars,
  its sign, and a dead zone that leaves small moves unlabelled (they are noise to a classifier).
- :func:`triple_barrier`: profit-take and stop-loss barriers at multiples of the rolling
  volatility, and a vertical barrier after h bars; the label is the barrier touched first.
- :func:`meta_labels`: for a primary rule's side, whether taking its trade paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numba import njit

from mlalgo.features.kernels import realised_vol

Entry = Literal["next_open", "close"]
Kind = Literal["forward_sign", "triple_barrier"]

BARRIER_STOP, BARRIER_VERTICAL, BARRIER_PROFIT = -1, 0, 1


def reach(horizon: int, entry: Entry = "next_open") -> int:
    """How many bars after t a label at t reads."""
    return horizon + (1 if entry == "next_open" else 0)


def forward_return(
    open_: np.ndarray, close: np.ndarray, horizon: int, entry: Entry = "next_open"
) -> tuple[np.ndarray, np.ndarray]:
    """Return over ``horizon`` bars as a position decided at bar t would earn it, and its end bar.

    With ``entry="next_open"`` (the backtest's default fill) the trade enters at ``open[t+1]`` and
    is valued at ``open[t+1+horizon]``, so the label is exactly what the position earns. With
    ``entry="close"`` it is ``close[t+horizon] / close[t] - 1``. Bars whose window runs past the
    data are NaN, with end index -1.
    """
    _check_horizon(horizon)
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    n = len(c)
    shift = 1 if entry == "next_open" else 0
    price = o if entry == "next_open" else c
    end = np.arange(n) + shift + horizon
    ret = np.full(n, np.nan)
    valid = end < n
    start = np.arange(n)[valid] + shift
    ret[valid] = price[end[valid]] / price[start] - 1.0
    return ret, np.where(valid, end, -1)


def sign_with_dead_zone(ret: np.ndarray, dead_zone: float = 0.0) -> np.ndarray:
    """+1 above ``dead_zone``, -1 below ``-dead_zone``, 0 inside it (inclusive); NaN stays NaN."""
    if dead_zone < 0:
        raise ValueError(f"dead_zone must be >= 0, got {dead_zone}")
    r = np.asarray(ret, dtype=np.float64)
    out = np.where(r > dead_zone, 1.0, np.where(r < -dead_zone, -1.0, 0.0))
    out[np.isnan(r)] = np.nan
    return out


@dataclass(frozen=True)
class BarrierLabels:
    ret: np.ndarray  # return from entry to the exit at the barrier touched
    label: np.ndarray  # +1 profit-take, -1 stop-loss, vertical: sign of ret (NaN: unavailable)
    barrier: np.ndarray  # int8: +1 profit-take, -1 stop-loss, 0 vertical, -2 unavailable
    end: np.ndarray  # int64: bar index where the label's event ends (-1: unavailable)


def triple_barrier(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    horizon: int,
    *,
    vol: np.ndarray,
    profit_take: float = 1.0,
    stop_loss: float = 1.0,
    entry: Entry = "next_open",
) -> BarrierLabels:
    """First barrier touched after entry, scanning each bar's high and low.

    The barriers sit at ``entry_price * (1 ± mult * vol[t] * sqrt(horizon))``: ``vol`` is a
    per-bar volatility known at t (e.g. :func:`~mlalgo.features.kernels.realised_vol`), scaled to
    the horizon so ``profit_take = 1`` means a one-sigma move over the holding period. A bar that
    opens beyond a barrier exits at its open (a gap); a bar whose range spans both barriers is
    counted as a stop-loss, the conservative reading when the order inside the bar is unknown.
    If neither is touched within ``horizon`` bars, the vertical barrier closes the trade at that
    bar's close and the label is the sign of that return.
    """
    _check_horizon(horizon)
    if profit_take <= 0 or stop_loss <= 0:
        raise ValueError("profit_take and stop_loss must be > 0 (multiples of volatility)")
    arrays = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, vol)]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError("open, high, low, close and vol must have one value per bar")
    ret, barrier, end = _barrier_core(
        *arrays,
        horizon,
        profit_take * np.sqrt(horizon),
        stop_loss * np.sqrt(horizon),
        entry == "next_open",
    )
    label = np.where(
        barrier == BARRIER_PROFIT, 1.0, np.where(barrier == BARRIER_STOP, -1.0, np.sign(ret))
    )
    label[barrier == -2] = np.nan
    return BarrierLabels(ret, label, barrier, end)


@njit(cache=True)
def _barrier_core(o, h, lo, c, vol, horizon, up_mult, down_mult, next_open):  # type: ignore[no-untyped-def]
    n = len(c)
    ret = np.full(n, np.nan)
    barrier = np.full(n, -2, dtype=np.int8)
    end = np.full(n, -1, dtype=np.int64)
    shift = 1 if next_open else 0
    for t in range(n):
        first = t + 1  # the first bar that can touch a barrier
        last = t + shift + horizon if next_open else t + horizon
        if last >= n or not np.isfinite(vol[t]) or vol[t] <= 0:
            continue
        p0 = o[t + 1] if next_open else c[t]
        upper = p0 * (1.0 + up_mult * vol[t])
        lower = p0 * (1.0 - down_mult * vol[t])
        for s in range(first, last + 1):
            # a gap through a barrier exits at the open (with next_open entry the first bar's
            # open is the entry price itself, always between the barriers)
            if o[s] <= lower:
                ret[t], barrier[t], end[t] = o[s] / p0 - 1.0, -1, s
                break
            elif o[s] >= upper:
                ret[t], barrier[t], end[t] = o[s] / p0 - 1.0, 1, s
                break
            if lo[s] <= lower:
                ret[t], barrier[t], end[t] = lower / p0 - 1.0, -1, s
                break
            if h[s] >= upper:
                ret[t], barrier[t], end[t] = upper / p0 - 1.0, 1, s
                break
        else:
            ret[t], barrier[t], end[t] = c[last] / p0 - 1.0, 0, last
    return ret, barrier, end


def meta_labels(side: np.ndarray, ret: np.ndarray) -> np.ndarray:
    """1 where taking the primary rule's ``side`` (+1/-1) earned ``side * ret > 0``, else 0.

    NaN where the rule is flat (0 or NaN) or the return is unknown: a meta-model learns only
    when to trust the primary rule, not which way to trade.
    """
    s = np.asarray(side, dtype=np.float64)
    r = np.asarray(ret, dtype=np.float64)
    out = np.where(s * r > 0, 1.0, 0.0)
    out[(s == 0) | np.isnan(s) | np.isnan(r)] = np.nan
    return out


def make_labels(
    bars: pd.DataFrame,
    *,
    horizon: int,
    entry: Entry = "next_open",
    kind: Kind = "forward_sign",
    dead_zone: float = 0.0,
    profit_take: float = 1.0,
    stop_loss: float = 1.0,
    vol_window: int = 20,
) -> pd.DataFrame:
    """Per-symbol labels: ``ret``, ``label`` (-1/0/+1), ``y`` (1.0 up, 0.0 down, NaN: no label,
    or inside the dead zone), ``barrier`` and ``t1`` (the event end time)."""
    parts = []
    for _, group in bars.groupby(level="symbol", sort=False):
        o, h, lo, c = (
            group[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close")
        )
        if kind == "forward_sign":
            ret, end = forward_return(o, c, horizon, entry)
            label = sign_with_dead_zone(ret, dead_zone)
            barrier = np.where(end >= 0, BARRIER_VERTICAL, -2).astype(np.int8)
        elif kind == "triple_barrier":
            res = triple_barrier(
                o,
                h,
                lo,
                c,
                horizon,
                vol=realised_vol(c, vol_window),
                profit_take=profit_take,
                stop_loss=stop_loss,
                entry=entry,
            )
            ret, label, barrier, end = res.ret, res.label, res.barrier, res.end
        else:
            raise ValueError(
                f"unknown label kind {kind!r}; expected forward_sign or triple_barrier"
            )
        times = group.index.get_level_values("time")
        t1 = pd.Series(pd.NaT, index=group.index, dtype=times.dtype)
        t1[end >= 0] = times[end[end >= 0]]
        y = np.where(label > 0, 1.0, np.where(label < 0, 0.0, np.nan))
        parts.append(
            pd.DataFrame(
                {"ret": ret, "label": label, "y": y, "barrier": barrier, "t1": t1},
                index=group.index,
            )
        )
    return pd.concat(parts)


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
