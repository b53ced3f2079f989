"""``mlalgo.backtest.run``: bars and targets in, a :class:`BacktestResult` out.

The DataFrame shell over :func:`mlalgo.backtest.portfolio.simulate_portfolio`: it lays the
bars of every symbol on one calendar, runs the engine once, and puts names and timestamps
back on what comes out, with the summary metrics (PSR and DSR included) and the same for
buy & hold on the same bars, so every caller reports the same numbers the same way.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import pandas as pd

from mlalgo.backtest.core import EXIT_REASONS
from mlalgo.backtest.metrics import returns_from_equity, summarize
from mlalgo.backtest.portfolio import PortfolioSim, simulate_portfolio
from mlalgo.backtest.sharpe_stats import expected_max_sharpe, sharpe_moments
from mlalgo.config import BacktestConfig

__all__ = ["BacktestResult", "run"]

PRICES = ("open", "high", "low", "close")


class BacktestResult:
    """What a backtest produced, indexed by time (and symbol).

    The tables are built from the engine's arrays when first read, so a caller that wants
    only the metrics (a tuning fold, a benchmark) does not pay for DataFrames it never uses.
    """

    def __init__(
        self,
        sim: PortfolioSim,
        times: pd.Index,
        symbols: list[str],
        metrics: dict[str, float],
        initial_cash: float,
        buy_hold: BacktestResult | None = None,
    ) -> None:
        self.sim = sim
        self.times = times
        self.symbols = symbols
        self.metrics = metrics
        self.initial_cash = initial_cash
        self.buy_hold = buy_hold  # equal weights on the same bars and costs

    @cached_property
    def equity(self) -> pd.Series:
        """Account value at each close."""
        return pd.Series(self.sim.equity, index=self.times, name="equity")

    @cached_property
    def returns(self) -> pd.Series:
        """Simple return of each bar, the first against the initial cash."""
        r = returns_from_equity(self.sim.equity, self.initial_cash)
        return pd.Series(r, index=self.times, name="returns")

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Units held at each close, one column per symbol."""
        return pd.DataFrame(self.sim.units, index=self.times, columns=self.symbols)

    @property
    def units(self) -> pd.DataFrame:
        return self.positions

    @property
    def killed_at(self) -> pd.Timestamp | None:
        """The close that tripped the drawdown kill switch, if one did."""
        return None if self.sim.killed_at < 0 else self.times[self.sim.killed_at]

    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip, all symbols, by entry time."""
        tr, times = self.sim.trades, self.times
        frame = pd.DataFrame(
            {
                "symbol": pd.Categorical.from_codes(tr.asset, self.symbols),
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
                "exit_reason": pd.Categorical.from_codes(tr.exit_reason, EXIT_REASONS),
                "is_open": tr.is_open,
            }
        )
        if (np.diff(tr.entry_bar) < 0).any():  # closed in another order than opened
            frame = frame.sort_values("entry_time", kind="stable").reset_index(drop=True)
        return frame

    @cached_property
    def fills(self) -> pd.DataFrame:
        """One row per fill, in time order."""
        f = self.sim.fills
        return pd.DataFrame(
            {
                "time": self.times[f.bar],
                "symbol": pd.Categorical.from_codes(f.asset, self.symbols),
                "units": f.units,
                "price": f.price,
                "commission": f.commission,
                "reason": pd.Categorical.from_codes(f.reason, EXIT_REASONS),
            }
        )


def _wide(bars: pd.DataFrame) -> tuple[list[np.ndarray], pd.Index, list[str]]:
    """Open, high, low and close as (time x symbol) arrays on the union calendar."""
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
        wide = bars[list(PRICES)].unstack("symbol")
        index = wide.index
        prices = [wide[c].reindex(columns=symbols).to_numpy(dtype=np.float64) for c in PRICES]
    else:
        symbols = [str(bars.attrs.get("symbol", "asset"))]
        index = bars.index
        prices = [bars[c].to_numpy(dtype=np.float64)[:, None] for c in PRICES]
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("run: bar times must be unique and increasing for every symbol")
    return prices, index, symbols


def _targets(
    target: pd.Series | pd.DataFrame | np.ndarray,
    bars: pd.DataFrame,
    index: pd.Index,
    symbols: list[str],
) -> np.ndarray:
    if isinstance(target, pd.DataFrame):
        wide = target
    elif isinstance(target, pd.Series):
        if not target.index.equals(bars.index):
            raise ValueError(
                "run: target must be indexed like bars (one target per bar and symbol); "
                f"got {len(target)} targets for {len(bars)} bars"
            )
        if not isinstance(target.index, pd.MultiIndex):
            return target.to_numpy(dtype=np.float64)[:, None]
        wide = target.unstack("symbol")
    else:
        arr = np.asarray(target, dtype=np.float64)
        if arr.shape != (len(bars),):
            raise ValueError(
                f"run: target has shape {arr.shape} but bars have {len(bars)} rows; pass one "
                "target per bar (a Series indexed like bars, or a DataFrame time x symbol)"
            )
        return _targets(pd.Series(arr, index=bars.index), bars, index, symbols)
    extra = set(wide.columns) - set(symbols)
    if extra:
        raise ValueError(f"run: target has symbols the bars lack: {sorted(extra)}")
    return wide.reindex(index=index, columns=symbols).to_numpy(dtype=np.float64)


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
    prices, times, symbols = _wide(bars)
    grid = _targets(target, bars, times, symbols)
    limits = cfg.risk.limits()
    day = _days(times) if limits.max_daily_loss is not None else None
    cost = cfg.costs.cost_model()
    sim = simulate_portfolio(
        *prices,
        grid,
        day=day,
        cash=cfg.initial_cash,
        cost=cost,
        fill=cfg.fill,
        sizing=cfg.sizing,
        unit_size=cfg.unit_size,
        min_trade=cfg.min_trade,
        limits=limits,
        periods_per_year=periods_per_year,
    )
    bench = None
    if buy_hold:
        hold = simulate_portfolio(
            *prices,
            np.full_like(grid, 1.0 / len(symbols)),
            cash=cfg.initial_cash,
            cost=cost,
            fill=cfg.fill,
            periods_per_year=periods_per_year,
        )
        metrics = _metrics(hold, cfg.initial_cash, periods_per_year, 1, 0.0)
        bench = BacktestResult(hold, times, symbols, metrics, cfg.initial_cash)
    metrics = _metrics(sim, cfg.initial_cash, periods_per_year, n_trials, trial_sharpes_variance)
    return BacktestResult(sim, times, symbols, metrics, cfg.initial_cash, bench)


def _days(times: pd.Index) -> np.ndarray:
    """A label per bar's calendar day (UTC), for the daily-loss limit."""
    if isinstance(times, pd.DatetimeIndex):
        days = times.tz_convert("UTC") if times.tz is not None else times
        # in nanoseconds whatever the index's unit (pandas 3 keeps "ms" or "s" from the source)
        return np.asarray(days.as_unit("ns").asi8 // 86_400_000_000_000, dtype=np.int64)
    return np.arange(len(times), dtype=np.int64)


def _metrics(
    sim: PortfolioSim, cash: float, ppy: float, n_trials: int, sr_variance: float
) -> dict[str, float]:
    f = sim.fills
    metrics = summarize(
        sim.equity,
        initial=cash,
        trade_pnl=sim.trades.pnl,
        in_market=(sim.units != 0.0).any(axis=1),
        traded_notional=np.abs(f.units * f.price),
        ppy=ppy,
    )
    moments = sharpe_moments(returns_from_equity(sim.equity, cash))
    if moments is None:
        metrics["psr"] = metrics["dsr"] = math.nan
    else:
        metrics["psr"] = moments.psr(0.0)
        metrics["dsr"] = moments.psr(expected_max_sharpe(n_trials, sr_variance))
    return metrics
