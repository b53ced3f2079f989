"""Performance metrics computed from equity curves, returns and trade results.

Every metric is a pure function of plain arrays so the same code scores a single-symbol
backtest and a portfolio whose equity is the sum of per-symbol curves on a common calendar
(see :func:`summarize`). Degenerate inputs return documented sentinels (0.0, NaN or inf)
instead of raising, because tuning loops routinely produce strategies that never trade.
``ppy`` is the number of bars per year used for annualisation (252 for daily bars).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mlalgo.backtest.engine import SimResult

__all__ = [
    "SUMMARY_KEYS",
    "annual_return",
    "avg_loss",
    "avg_win",
    "calmar",
    "drawdown",
    "expectancy",
    "exposure",
    "hit_rate",
    "max_drawdown",
    "max_drawdown_duration",
    "profit_factor",
    "returns_from_equity",
    "sharpe",
    "sortino",
    "summarize",
    "summary",
    "total_return",
    "turnover",
    "volatility",
    "win_loss_ratio",
]

SUMMARY_KEYS = (
    "total_return",
    "annual_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "profit_factor",
    "hit_rate",
    "n_trades",
    "avg_trade",
    "avg_win",
    "avg_loss",
    "expectancy",
    "exposure",
    "turnover",
)

FloatArray = npt.NDArray[np.float64]


def _vector(name: str, values: npt.ArrayLike, *, allow_empty: bool = True) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (got shape {arr.shape}); pass one value per bar")
    if not allow_empty and arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one bar")
    return arr


def _check_initial(name: str, initial: float) -> float:
    if not math.isfinite(initial) or initial <= 0:
        raise ValueError(f"{name}: initial must be finite and > 0 (got {initial!r})")
    return float(initial)


def _check_ppy(name: str, ppy: float) -> float:
    if not math.isfinite(ppy) or ppy <= 0:
        raise ValueError(
            f"{name}: ppy (periods per year) must be finite and > 0 (got {ppy!r}); "
            "use 252 for daily bars"
        )
    return float(ppy)


def returns_from_equity(equity: npt.ArrayLike, initial: float) -> FloatArray:
    """Simple per-bar returns; the first bar is measured against ``initial`` so none is lost."""
    eq = _vector("returns_from_equity: equity", equity)
    start = _check_initial("returns_from_equity", initial)
    prev = np.concatenate(([start], eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return eq / prev - 1.0


def drawdown(equity: npt.ArrayLike) -> FloatArray:
    """Fractional distance below the running peak, ``equity / cummax(equity) - 1`` (<= 0)."""
    eq = _vector("drawdown: equity", equity)
    if eq.shape[0] == 0:
        return eq.copy()
    return eq / np.maximum.accumulate(eq) - 1.0


def max_drawdown(equity: npt.ArrayLike) -> float:
    """Deepest drawdown as a negative fraction (e.g. -0.35); 0.0 for an empty or rising curve."""
    dd = drawdown(equity)
    return float(min(dd.min(), 0.0)) if dd.shape[0] else 0.0


def max_drawdown_duration(equity: npt.ArrayLike) -> int:
    """Longest run of consecutive bars strictly below an earlier peak.

    Duration matters separately from depth: a shallow drawdown that lasts years is what makes
    people abandon a strategy. A drawdown still open at the end counts up to the last bar.
    """
    eq = _vector("max_drawdown_duration: equity", equity)
    if eq.shape[0] == 0:
        return 0
    below = eq < np.maximum.accumulate(eq)
    if not below.any():
        return 0
    bar = np.arange(eq.shape[0])
    last_peak = np.maximum.accumulate(np.where(below, -1, bar))  # latest bar not below
    return int((bar - last_peak)[below].max())


def total_return(equity: npt.ArrayLike, initial: float) -> float:
    """Final equity relative to the starting capital, minus one."""
    eq = _vector("total_return: equity", equity, allow_empty=False)
    return float(eq[-1] / _check_initial("total_return", initial) - 1.0)


def annual_return(equity: npt.ArrayLike, initial: float, ppy: float = 252) -> float:
    """Geometric annualised return ``(1 + total) ** (ppy / n) - 1``; -1.0 if the account is wiped.

    Geometric rather than arithmetic so that it compounds back to the realised total return.
    """
    eq = _vector("annual_return: equity", equity, allow_empty=False)
    ppy = _check_ppy("annual_return", ppy)
    growth = 1.0 + total_return(eq, initial)
    if growth <= 0.0:
        return -1.0
    return float(growth ** (ppy / eq.shape[0]) - 1.0)


def volatility(returns: npt.ArrayLike, ppy: float = 252) -> float:
    """Annualised sample standard deviation (ddof=1); 0.0 with fewer than two returns."""
    r = _vector("volatility: returns", returns)
    ppy = _check_ppy("volatility", ppy)
    if r.shape[0] < 2:
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(returns: npt.ArrayLike, ppy: float = 252, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio ``mean(r - rf) / std(r, ddof=1) * sqrt(ppy)``.

    ``risk_free`` is an annual rate, converted to ``risk_free / ppy`` per bar. Returns 0.0
    with fewer than two returns or when all returns are identical (no risk to reward), so a
    strategy that never trades scores neutral rather than NaN in a tuning objective.
    """
    r = _vector("sharpe: returns", returns)
    ppy = _check_ppy("sharpe", ppy)
    if r.shape[0] < 2 or bool(np.all(r == r[0])):
        return 0.0
    std = float(np.std(r, ddof=1))
    if not std > 0.0:
        return 0.0
    return float(np.mean(r - risk_free / ppy) / std * math.sqrt(ppy))


def sortino(returns: npt.ArrayLike, ppy: float = 252) -> float:
    """Annualised Sortino ratio ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy)``.

    Only losses count as risk. Without any negative return the ratio is unbounded: it is
    ``+inf`` when the mean is positive and 0.0 otherwise (flat or empty), so callers that need
    a finite score should clip it.
    """
    r = _vector("sortino: returns", returns)
    ppy = _check_ppy("sortino", ppy)
    if r.shape[0] == 0:
        return 0.0
    mean = float(np.mean(r))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return math.inf if mean > 0.0 else 0.0
    return mean / downside * math.sqrt(ppy)


def calmar(equity: npt.ArrayLike, initial: float, ppy: float = 252) -> float:
    """Annual return per unit of maximum drawdown; NaN when there was no drawdown."""
    mdd = max_drawdown(equity)
    if mdd == 0.0:
        return math.nan
    return annual_return(equity, initial, ppy) / abs(mdd)


def profit_factor(pnl: npt.ArrayLike) -> float:
    """Gross profit over gross loss of trades.

    NaN with no trades or when every trade is exactly zero (0/0); +inf when there are
    winning trades but no losing one.
    """
    p = _vector("profit_factor: pnl", pnl)
    gross_profit = float(p[p > 0.0].sum())
    gross_loss = float(-p[p < 0.0].sum())
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else math.nan
    return gross_profit / gross_loss


def hit_rate(pnl: npt.ArrayLike) -> float:
    """Share of trades with a strictly positive pnl; NaN with no trades."""
    p = _vector("hit_rate: pnl", pnl)
    return float(np.mean(p > 0.0)) if p.shape[0] else math.nan


def avg_win(pnl: npt.ArrayLike) -> float:
    """Mean pnl of the winning (strictly positive) trades; NaN when no trade won."""
    p = _vector("avg_win: pnl", pnl)
    wins = p[p > 0.0]
    return float(np.mean(wins)) if wins.shape[0] else math.nan


def avg_loss(pnl: npt.ArrayLike) -> float:
    """Mean pnl of the losing (strictly negative) trades, so a negative number; NaN without any.

    Kept signed, like the pnl it averages, so ``expectancy`` is a plain weighted sum of the two.
    """
    p = _vector("avg_loss: pnl", pnl)
    losses = p[p < 0.0]
    return float(np.mean(losses)) if losses.shape[0] else math.nan


def expectancy(pnl: npt.ArrayLike) -> float:
    """Mean pnl per trade, ``hit_rate * avg_win + (1 - hit_rate) * avg_loss``; 0.0 with no trades.

    Computed as the plain mean, which equals that decomposition when no trade is exactly zero
    (a zero trade counts in the denominator but is neither a win nor a loss) and stays finite
    when there are only wins or only losses, where one of the averages is NaN. A strategy that
    never trades expects nothing, so it scores 0.0 rather than NaN in a tuning objective.
    """
    p = _vector("expectancy: pnl", pnl)
    return float(np.mean(p)) if p.shape[0] else 0.0


def win_loss_ratio(pnl: npt.ArrayLike) -> float:
    """Average win over the magnitude of the average loss, ``avg_win / |avg_loss|``.

    Read together with :func:`hit_rate`: a low hit rate is fine when this ratio is large. NaN
    when there is neither a win nor a loss (no trades, or only zero trades); +inf with wins but
    no loss; 0.0 with losses but no win (matching :func:`profit_factor`).
    """
    win = avg_win(pnl)
    loss = avg_loss(pnl)
    if math.isnan(loss):
        return math.nan if math.isnan(win) else math.inf
    if math.isnan(win):
        return 0.0
    return win / abs(loss)


def exposure(units: npt.ArrayLike) -> float:
    """Share of bars holding a non-zero position (units or a boolean in-market mask)."""
    u = _vector("exposure: units", units)
    return float(np.mean(u != 0.0)) if u.shape[0] else math.nan


def _turnover(notional: FloatArray, equity: FloatArray) -> float:
    mean_equity = float(np.mean(equity)) if equity.shape[0] else math.nan
    if not mean_equity > 0.0:
        return math.nan
    return float(np.abs(notional).sum()) / mean_equity


def turnover(fill_units: npt.ArrayLike, fill_price: npt.ArrayLike, equity: npt.ArrayLike) -> float:
    """Total traded notional over the whole run divided by mean equity (not annualised).

    NaN when mean equity is not positive, since the ratio is then meaningless.
    """
    u = _vector("turnover: fill_units", fill_units)
    p = _vector("turnover: fill_price", fill_price)
    if u.shape != p.shape:
        raise ValueError(
            f"turnover: fill_units has {u.shape[0]} fills but fill_price has {p.shape[0]}; "
            "pass one price per fill"
        )
    return _turnover(u * p, _vector("turnover: equity", equity))


def summarize(
    equity: npt.ArrayLike,
    *,
    initial: float,
    trade_pnl: npt.ArrayLike,
    in_market: npt.ArrayLike,
    traded_notional: npt.ArrayLike,
    ppy: float = 252,
) -> dict[str, float]:
    """Headline metrics from plain arrays, for one symbol or a whole portfolio.

    Parameters
    ----------
    equity : array_like, shape (n,)
        Equity at each bar's close; for a portfolio the per-symbol curves summed on a common
        calendar (``initial`` is then the summed starting cash).
    initial : float
        Starting capital the first return is measured against.
    trade_pnl : array_like, shape (m,)
        Net pnl of every trade, including trades still open and marked to market at the end.
    in_market : array_like, shape (n,)
        Boolean (or units) per bar; non-zero means a position was held.
    traded_notional : array_like, shape (k,)
        Notional of every fill (sign ignored).
    ppy : float
        Bars per year used for annualisation.

    Returns
    -------
    dict[str, float]
        Exactly the keys in :data:`SUMMARY_KEYS`. ``n_trades`` counts all trades, and
        ``hit_rate``, ``profit_factor``, ``avg_trade``, ``avg_win``, ``avg_loss`` and
        ``expectancy`` include an open trade at its mark-to-market pnl so that they agree
        with the equity curve. ``expectancy`` equals ``avg_trade`` except with no trades,
        where it is 0.0 instead of NaN.
    """
    eq = _vector("summarize: equity", equity, allow_empty=False)
    start = _check_initial("summarize", initial)
    ppy = _check_ppy("summarize", ppy)
    pnl = _vector("summarize: trade_pnl", trade_pnl)
    mask = _vector("summarize: in_market", in_market)
    if mask.shape != eq.shape:
        raise ValueError(
            f"summarize: equity has {eq.shape[0]} bars but in_market has {mask.shape[0]}; "
            "pass one in-market flag per bar"
        )
    returns = returns_from_equity(eq, start)
    return {
        "total_return": total_return(eq, start),
        "annual_return": annual_return(eq, start, ppy),
        "volatility": volatility(returns, ppy),
        "sharpe": sharpe(returns, ppy),
        "sortino": sortino(returns, ppy),
        "calmar": calmar(eq, start, ppy),
        "max_drawdown": max_drawdown(eq),
        "max_drawdown_duration": float(max_drawdown_duration(eq)),
        "profit_factor": profit_factor(pnl),
        "hit_rate": hit_rate(pnl),
        "n_trades": float(pnl.shape[0]),
        "avg_trade": float(np.mean(pnl)) if pnl.shape[0] else math.nan,
        "avg_win": avg_win(pnl),
        "avg_loss": avg_loss(pnl),
        "expectancy": expectancy(pnl),
        "exposure": exposure(mask),
        "turnover": _turnover(_vector("summarize: traded_notional", traded_notional), eq),
    }


def summary(result: SimResult, *, initial: float, ppy: float = 252) -> dict[str, float]:
    """:func:`summarize` applied to one :class:`~mlalgo.backtest.engine.SimResult`."""
    return summarize(
        result.equity,
        initial=initial,
        trade_pnl=result.trades.pnl,
        in_market=result.units != 0.0,
        traded_notional=np.abs(result.fill_units) * result.fill_price,
        ppy=ppy,
    )
