"""``mlalgo.backtest.run``: bars and targets in, a :class:`BacktestResult` out.

The DataFrame shell over :func:`mlalgo.backtest.portfolio.simulate_portfolio`: it lays the
bars of every symbol on one calendar, runs the engine once, and puts names and timestamps
back on what comes out, with the summary metrics (PSR and DSR included) and the same for
buy & hold on the same bars, so every caller reports the same numbers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlalgo.backtest.core import EXIT_REASONS
from mlalgo.backtest.metrics import returns_from_equity, summarize
from mlalgo.backtest.portfolio import NO_LIMITS, PortfolioSim, simulate_portfolio
from mlalgo.backtest.sharpe_stats import deflated_sharpe_ratio, probabilistic_sharpe_ratio
from mlalgo.config import BacktestConfig

__all__ = ["BacktestResult", "run"]

PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """What a backtest produced, indexed by time (and symbol)."""

    equity: pd.Series  # account value at each close
    returns: pd.Series  # simple return of each bar, the first against the initial cash
    positions: pd.DataFrame  # units held at each close, one column per symbol
    trades: pd.DataFrame  # one row per round trip, all symbols, by entry time
    fills: pd.DataFrame  # one row per fill
    metrics: dict[str, float]
    initial_cash: float
    killed_at: pd.Timestamp | None  # close that tripped the drawdown kill switch
    buy_hold: BacktestResult | None = None  # equal weights on the same bars and costs

    @property
    def units(self) -> pd.DataFrame:
        return self.positions


def _wide(bars: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str]]:
    missing = [c for c in PRICES if c not in bars.columns]
    if missing:
        raise ValueError(
            f"run: bars have no {', '.join(missing)} column(s); the engine needs open, high, "
            "low and close"
        )
    if isinstance(bars.index, pd.MultiIndex):
        names = list(bars.index.names)
        if "symbol" not in names or "time" not in names:
            raise ValueError(
                f"run: bars with a MultiIndex need levels 'symbol' and 'time' (got {names})"
            )
        symbols = list(dict.fromkeys(bars.index.get_level_values("symbol")))
        frame = {c: bars[c].unstack("symbol").reindex(columns=symbols) for c in PRICES}
    else:
        symbols = [str(bars.attrs.get("symbol", "asset"))]
        frame = {c: bars[[c]].set_axis(symbols, axis=1) for c in PRICES}
    index = frame["close"].index
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("run: bar times must be unique and increasing for every symbol")
    return frame, symbols


def _targets(
    target: pd.Series | pd.DataFrame, bars: pd.DataFrame, like: pd.DataFrame
) -> np.ndarray:
    if isinstance(target, pd.DataFrame):
        wide = target
    elif isinstance(target, pd.Series):
        if not target.index.equals(bars.index):
            raise ValueError(
                "run: target must be indexed like bars (one target per bar and symbol); "
                f"got {len(target)} targets for {len(bars)} bars"
            )
        if isinstance(target.index, pd.MultiIndex):
            wide = target.unstack("symbol")
        else:
            wide = target.to_frame(like.columns[0])
    else:
        arr = np.asarray(target, dtype=np.float64)
        if arr.shape != (len(bars),):
            raise ValueError(
                f"run: target has shape {arr.shape} but bars have {len(bars)} rows; pass one "
                "target per bar (a Series indexed like bars, or a DataFrame time x symbol)"
            )
        return _targets(pd.Series(arr, index=bars.index), bars, like)
    extra = set(wide.columns) - set(like.columns)
    if extra:
        raise ValueError(f"run: target has symbols the bars lack: {sorted(extra)}")
    return wide.reindex(index=like.index, columns=like.columns).to_numpy(dtype=np.float64)


def run(
    bars: pd.DataFrame,
    target: pd.Series | pd.DataFrame | np.ndarray,
    config: BacktestConfig | None = None,
    *,
    periods_per_year: float = 252,
    n_trials: int = 1,
    trial_sharpes_variance: float = 0.0,
    buy_hold: bool = True,
) -> BacktestResult:
    """Backtest ``target`` on ``bars`` with ``config``'s fills, costs, sizing and risk limits.

    Parameters
    ----------
    bars
        OHLC bars: one symbol indexed by time, or many indexed by (symbol, time). Symbols
        share one calendar, the union of their times; a symbol without a bar at a time
        neither trades nor triggers exits then.
    target
        Desired exposure per bar and symbol as a signed fraction of the whole account's
        equity (units with ``sizing: units``), decided at that bar's close; NaN keeps the
        position. A Series indexed like ``bars``, a DataFrame (time x symbol) or an array.
    config
        The ``stages.backtest`` section; ``fill``, ``initial_cash``, ``costs``, ``sizing``,
        ``unit_size``, ``min_trade`` and ``risk`` are used here.
    n_trials, trial_sharpes_variance
        How many strategies were tried to pick this one and the variance of their per-bar
        Sharpe ratios, for the deflated Sharpe ratio ``dsr`` (equal to ``psr`` for one).
    buy_hold
        Also run equal weights held from the first bar (same costs and fills, no limits).
    """
    cfg = config or BacktestConfig()
    frame, symbols = _wide(bars)
    grid = _targets(target, bars, frame["close"])
    times = frame["close"].index
    day = _days(times)
    sim = simulate_portfolio(
        *(frame[c].to_numpy(dtype=np.float64) for c in PRICES),
        grid,
        day=day,
        cash=cfg.initial_cash,
        cost=cfg.costs.cost_model(),
        fill=cfg.fill,
        sizing=cfg.sizing,
        unit_size=cfg.unit_size,
        min_trade=cfg.min_trade,
        limits=cfg.risk.limits(),
        periods_per_year=periods_per_year,
    )
    bench = None
    if buy_hold:
        weights = np.full_like(grid, 1.0 / len(symbols))
        hold = simulate_portfolio(
            *(frame[c].to_numpy(dtype=np.float64) for c in PRICES),
            weights,
            day=day,
            cash=cfg.initial_cash,
            cost=cfg.costs.cost_model(),
            fill=cfg.fill,
            limits=NO_LIMITS,
            periods_per_year=periods_per_year,
        )
        bench = _result(hold, times, symbols, cfg.initial_cash, periods_per_year, 1, 0.0, None)
    return _result(
        sim,
        times,
        symbols,
        cfg.initial_cash,
        periods_per_year,
        n_trials,
        trial_sharpes_variance,
        bench,
    )


def _days(times: pd.Index) -> np.ndarray:
    """A label per bar's calendar day (UTC), for the daily-loss limit."""
    if isinstance(times, pd.DatetimeIndex):
        days = times.tz_convert("UTC") if times.tz is not None else times
        return np.asarray(days.normalize().asi8 // 86_400_000_000_000, dtype=np.int64)
    return np.arange(len(times), dtype=np.int64)


def _result(
    sim: PortfolioSim,
    times: pd.Index,
    symbols: list[str],
    cash: float,
    ppy: float,
    n_trials: int,
    sr_variance: float,
    bench: BacktestResult | None,
) -> BacktestResult:
    equity = pd.Series(sim.equity, index=times, name="equity")
    returns = pd.Series(returns_from_equity(sim.equity, cash), index=times, name="returns")
    positions = pd.DataFrame(sim.units, index=times, columns=symbols)
    tr = sim.trades
    sym = np.asarray(symbols, dtype=object)
    trades = pd.DataFrame(
        {
            "symbol": sym[tr.asset],
            "entry_time": times[tr.entry_bar],
            "exit_time": times[tr.exit_bar],
            "direction": tr.direction,
            "units": tr.units,
            "entry_price": tr.entry_price,
            "exit_price": tr.exit_price,
            "pnl": tr.pnl,
            "return": tr.pnl / (tr.units * tr.entry_price),
            "commission": tr.commission,
            "borrow": tr.borrow,
            "bars": tr.exit_bar - tr.entry_bar,
            "exit_reason": np.asarray(EXIT_REASONS, dtype=object)[tr.exit_reason],
            "is_open": tr.is_open,
        }
    )
    trades = trades.sort_values("entry_time", kind="stable").reset_index(drop=True)
    f = sim.fills
    fills = pd.DataFrame(
        {
            "time": times[f.bar],
            "symbol": sym[f.asset],
            "units": f.units,
            "price": f.price,
            "commission": f.commission,
            "reason": np.asarray(EXIT_REASONS, dtype=object)[f.reason],
        }
    )
    metrics = summarize(
        sim.equity,
        initial=cash,
        trade_pnl=tr.pnl,
        in_market=(sim.units != 0.0).any(axis=1),
        traded_notional=np.abs(f.units * f.price),
        ppy=ppy,
    )
    r = returns.to_numpy()
    metrics["psr"] = probabilistic_sharpe_ratio(r)
    metrics["dsr"] = deflated_sharpe_ratio(r, n_trials, sr_variance)
    killed = None if sim.killed_at < 0 else times[sim.killed_at]
    return BacktestResult(
        equity, returns, positions, trades, fills, metrics, float(cash), killed, bench
    )
