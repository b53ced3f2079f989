"""The paper broker's account: the backtest's own engine, advanced one bar row at a time.

Motivation
----------
Invariant 4 of the design says replaying bars through the live loop reproduces the
backtest's fills, trades, positions and equity. Rather than a second simulator that is
tested to agree, :class:`PaperAccount` holds the state of :mod:`mlalgo.backtest.core` and
calls its :func:`~mlalgo.backtest.core.advance` on each row as it arrives, so the two agree
by construction. What the backtest knows up front and the account must learn as it goes is
rebuilt online and exactly: the volatility slippage of
:meth:`mlalgo.backtest.costs.CostModel.adverse_rates` (per symbol, from the closes seen so
far, summed in numpy's order) and the previous row's decisions, which fill at this open.

Numpy and numba only: importing this module does not load pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from mlalgo.backtest import core

if TYPE_CHECKING:
    from mlalgo.backtest.costs import CostModel

__all__ = ["TRADE_COLUMNS", "PaperAccount", "PaperFill", "utc_day"]

FloatArray = npt.NDArray[np.float64]

TRADE_COLUMNS = (
    "asset",
    "entry_row",
    "exit_row",
    "direction",
    "units",
    "entry_price",
    "exit_price",
    "pnl",
    "commission",
    "borrow",
    "exit_reason",
)
"""Columns of :meth:`PaperAccount.trades`, as the core writes them (all float)."""

_MS_PER_DAY = 86_400_000
_FRACTIONS = ("stop_loss", "trailing_stop", "max_drawdown", "max_daily_loss")
_ROW_ERRORS = {
    1: "has a missing open, high, low or close but not all four; a bar is whole or all NaN",
    2: "has a price that is not finite and > 0; repair or drop the bar first",
    3: "has a high below its open or close or a low above them",
    4: "has an infinite target; use NaN for 'no decision'",
    5: "gets an adverse move (slippage, spread and volatility slippage) of 100 % or more",
}


def utc_day(open_ms: int) -> int:
    """The day label the backtest gives a bar at ``open_ms`` (its UTC calendar day)."""
    return open_ms // _MS_PER_DAY


@dataclass(frozen=True, slots=True)
class PaperFill:
    """One fill: ``units`` signed (+ buy), ``price`` slipped, ``reason`` from
    :data:`mlalgo.backtest.core.EXIT_REASONS`."""

    row: int
    symbol: str
    units: float
    price: float
    commission: float
    reason: str
    open_ms: int


class PaperAccount:
    """One cash account over ``symbols``, stepped with one row of bars and decisions at a time.

    Parameters mirror :func:`mlalgo.backtest.portfolio.simulate_portfolio` with the cost
    model as plain numbers (:meth:`from_cost_model` takes a ``CostModel``): rates are
    fractions, ``borrow_rate`` is per bar, and a risk limit of None is off.

    Examples
    --------
    >>> acct = PaperAccount(["A"], cash=1000.0)
    >>> acct.step(0, None, [10.0], [10.5], [9.5], [10.0], [1.0])  # all in, decided at the close
    []
    >>> [fill] = acct.step(1, None, [11.0], [11.5], [10.5], [11.0], [float("nan")])
    >>> fill.row, fill.units, fill.price, fill.reason  # at the next open
    (1, 90.9090909090909, 11.0, 'signal')
    >>> acct.step(2, None, [11.0], [12.5], [10.5], [12.0], [0.0])  # flat, decided at the close
    []
    >>> acct.step(3, None, [12.0], [12.5], [11.5], [12.5], [float("nan")])[0].units
    -90.9090909090909
    >>> acct.equity, round(float(acct.trades()[0, 7]), 6)  # and the round trip's PnL
    (1090.909090909091, 90.909091)
    """

    def __init__(
        self,
        symbols: Sequence[str],
        cash: float = 1.0,
        *,
        commission_rate: float = 0.0,
        commission_fixed: float = 0.0,
        slippage_rate: float = 0.0,
        slippage_vol: float = 0.0,
        vol_window: int = 20,
        borrow_rate: float = 0.0,
        fill: str = "next_open",
        sizing: str = "fraction",
        unit_size: float = 1.0,
        min_trade: float = 0.0,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
        max_drawdown: float | None = None,
        max_daily_loss: float | None = None,
        max_position: float | None = None,
        max_leverage: float | None = None,
    ) -> None:
        self.symbols = list(symbols)
        m = len(self.symbols)
        if m == 0 or len(set(self.symbols)) != m:
            raise ValueError(f"PaperAccount: symbols must be distinct and non-empty ({symbols!r})")
        if fill not in ("next_open", "close"):
            raise ValueError(f"PaperAccount: fill must be 'next_open' or 'close' (got {fill!r})")
        if sizing not in core.SIZING_CODES:
            raise ValueError(
                f"PaperAccount: sizing must be one of {sorted(core.SIZING_CODES)} (got {sizing!r})"
            )
        _positive("cash", cash)
        _positive("unit_size", unit_size)
        for name, value in (
            ("commission_rate", commission_rate),
            ("commission_fixed", commission_fixed),
            ("slippage_rate", slippage_rate),
            ("slippage_vol", slippage_vol),
            ("borrow_rate", borrow_rate),
            ("min_trade", min_trade),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PaperAccount: {name} must be finite and >= 0 (got {value!r})")
        if isinstance(vol_window, bool) or not isinstance(vol_window, int) or vol_window < 2:
            raise ValueError(f"PaperAccount: vol_window must be an integer >= 2 ({vol_window!r})")
        limits = {
            "stop_loss": stop_loss,
            "take_profit": take_profit,
            "trailing_stop": trailing_stop,
            "max_drawdown": max_drawdown,
            "max_daily_loss": max_daily_loss,
            "max_position": max_position,
            "max_leverage": max_leverage,
        }
        for name, value in limits.items():
            upper = 1.0 if name in _FRACTIONS else math.inf
            if value is not None and not 0.0 < value < upper:
                rng = "between 0 and 1 (exclusive)" if upper == 1.0 else "> 0"
                raise ValueError(f"PaperAccount: {name} must be {rng} or None (got {value!r})")
        self.fill = fill
        self.daily_loss = max_daily_loss is not None
        self._fill_at_close = fill == "close"
        self._slip = (float(slippage_rate), float(slippage_vol), vol_window)

        def off(name: str, none: float) -> float:
            value = limits[name]
            return none if value is None else float(value)

        # the core's conventions for "off", as simulate_portfolio maps them
        self._params = core.pack_params(
            float(commission_rate),
            float(commission_fixed),
            float(borrow_rate),
            self._fill_at_close,
            core.SIZING_CODES[sizing],
            float(unit_size),
            off("max_position", math.inf),
            off("max_leverage", math.inf),
            float(min_trade),
            off("stop_loss", 0.0),
            off("take_profit", 0.0),
            off("trailing_stop", 0.0),
            off("max_drawdown", 0.0),
            off("max_daily_loss", 0.0),
        )
        self._cash0 = float(cash)
        self._acct, self._count, self._book, self._flags, self._tr = core.new_state(m, cash)
        self._rows = list(self._book) + list(self._flags)  # units .. changing, as views
        self._n = 0
        cap = 64
        self._prices = np.empty((5, cap, m))  # open, high, low, close, target
        self._slips = np.empty((cap, m))
        self._day = np.empty(cap, dtype=np.int64)
        self._open_ms = np.empty(cap, dtype=np.int64)
        self._equity = np.empty(cap)
        self._cash = np.empty(cap)
        self._units = np.empty((cap, m))
        self._fills = np.empty((cap, 6))
        self._trades = np.empty((cap, 11))
        self._fill_log: list[PaperFill] = []
        # volatility slippage: each symbol's latest log returns, oldest first (2 * window
        # slots, so the window is always contiguous and a shift happens once per window rows)
        self._rets = np.empty((m, 2 * vol_window))
        self._held = np.zeros(m, dtype=np.int64)  # returns in those slots
        self._last_log = np.full(m, np.nan)  # log of the last close seen
        self._scratch = np.empty(vol_window)

    @classmethod
    def from_cost_model(
        cls,
        symbols: Sequence[str],
        cost: CostModel,
        *,
        periods_per_year: float = 252,
        **kwargs: Any,
    ) -> PaperAccount:
        """An account paying ``cost`` (a :class:`~mlalgo.backtest.costs.CostModel`), the
        backtest's own cost model; ``kwargs`` as for the constructor."""
        return cls(
            symbols,
            commission_rate=cost.commission_rate,
            commission_fixed=float(cost.commission_fixed),
            slippage_rate=cost.slippage_rate,
            slippage_vol=float(cost.slippage_vol),
            vol_window=cost.vol_window,
            borrow_rate=cost.borrow_rate(periods_per_year),
            **kwargs,
        )

    # ------------------------------------------------------------------------ stepping

    def step(
        self,
        open_ms: int,
        day: int | None,
        o: npt.ArrayLike,
        h: npt.ArrayLike,
        l: npt.ArrayLike,  # noqa: E741
        c: npt.ArrayLike,
        target: npt.ArrayLike,
    ) -> list[PaperFill]:
        """Trade one row of bars (NaN: the symbol has no bar) and record ``target``, the
        decisions taken at this row's close (NaN: none); returns this row's fills.

        With ``next_open`` fills this row's open fills the previous row's decisions, so the
        first row never trades on a signal. ``day`` labels the row's trading day for
        ``max_daily_loss`` (:func:`utc_day` gives the runner's label); None, or no daily-loss
        limit, makes every row its own day, as the backtest does.
        """
        t, m = self._n, len(self.symbols)
        row = [np.ascontiguousarray(x, dtype=np.float64) for x in (o, h, l, c, target)]
        for x in row:
            if x.shape != (m,):
                raise ValueError(
                    f"PaperAccount.step: got shape {x.shape}, expected one value per symbol ({m})"
                )
        label = t if day is None or not self.daily_loss else int(day)
        if t > 0 and label < self._day[t - 1]:
            raise ValueError(
                f"PaperAccount.step: day {label} comes before the previous row's "
                f"{self._day[t - 1]}; day labels must not decrease"
            )
        if t > 0 and open_ms <= self._open_ms[t - 1]:
            raise ValueError(
                f"PaperAccount.step: open_ms {open_ms} is not after the previous row's "
                f"{self._open_ms[t - 1]}; rows must arrive in time order, once each"
            )
        self._reserve(t, m)
        p = self._prices
        rate, vol_mult, window = self._slip
        logc = row[3]
        if vol_mult:  # numpy's log, as adverse_rates takes it (numba's can differ in an ulp)
            with np.errstate(divide="ignore", invalid="ignore"):  # bad prices raise below
                logc = np.log(row[3])
        err, bad = _ingest(
            t,
            *row,
            logc,
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            self._slips,
            self._rets,
            self._held,
            self._last_log,
            self._scratch,
            rate,
            vol_mult,
            window,
            self._fill_at_close,
        )
        if err:
            raise ValueError(
                f"PaperAccount.step: row {t} of {self.symbols[bad]} {_ROW_ERRORS[err]}"
            )
        self._day[t] = label
        self._open_ms[t] = open_ms
        k = int(self._count[core.N_FILLS])
        # Called from Python, never from a jitted function of this module: numba keys its
        # disk cache on the caller's file alone, so a jitted caller would keep an old core.
        core.advance(
            t,
            t + 1,
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            self._day,
            self._slips,
            self._params,
            self._acct,
            self._count,
            *self._rows,
            self._tr,
            self._fills,
            self._trades,
            self._equity,
            self._cash,
            self._units,
        )
        self._n = t + 1
        new = [
            PaperFill(
                row=int(f[0]),
                symbol=self.symbols[int(f[1])],
                units=float(f[2]),
                price=float(f[3]),
                commission=float(f[4]),
                reason=core.EXIT_REASONS[int(f[5])],
                open_ms=int(open_ms),
            )
            for f in self._fills[k : self._count[core.N_FILLS]]
        ]
        self._fill_log.extend(new)
        return new

    def _reserve(self, t: int, m: int) -> None:
        """Room for row ``t`` and its fills: arrays double when full, so a row costs O(1)."""
        if t == self._equity.shape[0]:
            self._prices = _grown(self._prices, t, axis=1)
            self._slips, self._day, self._open_ms = (
                _grown(a, t) for a in (self._slips, self._day, self._open_ms)
            )
            self._equity, self._cash, self._units = (
                _grown(a, t) for a in (self._equity, self._cash, self._units)
            )
        room = 5 * m  # a bar fills each symbol at most 4 times, and closes a trade per fill
        k, q = self._count[core.N_FILLS], self._count[core.N_TRADES]
        if self._fills.shape[0] - k < room:
            self._fills = _grown(self._fills, k, rows=2 * (k + room))
        if self._trades.shape[0] - q < room:
            self._trades = _grown(self._trades, q, rows=2 * (q + room))

    # ------------------------------------------------------------------------ state

    @property
    def rows(self) -> int:
        """Rows stepped so far."""
        return self._n

    @property
    def cash(self) -> float:
        return float(self._acct[core.CASH])

    @property
    def units(self) -> FloatArray:
        """Units held per symbol (in ``symbols`` order), a copy."""
        return self._book[core.UNITS].copy()

    @property
    def equity(self) -> float:
        """Cash plus every position at its last close, after the last row (the cash before
        the first)."""
        return float(self._equity[self._n - 1]) if self._n else self._cash0

    @property
    def killed(self) -> bool:
        """Whether the drawdown kill switch has tripped (nothing trades after its flatten)."""
        return bool(self._count[core.KILLED])

    @property
    def killed_at(self) -> int:
        """The row whose close tripped the kill switch, -1 if none."""
        return int(self._count[core.KILLED_AT])

    @property
    def fills(self) -> list[PaperFill]:
        """Every fill so far, in order (a copy: :attr:`n_fills` counts them for free)."""
        return list(self._fill_log)

    @property
    def n_fills(self) -> int:
        """How many fills so far."""
        return len(self._fill_log)

    def history(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Equity, cash (per row) and units (row x symbol) after each row so far, copies."""
        n = self._n
        return self._equity[:n].copy(), self._cash[:n].copy(), self._units[:n].copy()

    def fill_rows(self) -> FloatArray:
        """The fills as the core's rows (row, asset, units, price, commission, reason)."""
        return self._fills[: self._count[core.N_FILLS]].copy()

    def trades(self, final: bool = False) -> FloatArray:
        """Closed round trips so far, one row each (:data:`TRADE_COLUMNS`), in closing order.

        ``final=True`` adds the open ones as the backtest ends a run: marked at their last
        close after the last row, no exit costs, reason ``"open"``. The account is unchanged.
        """
        q = int(self._count[core.N_TRADES])
        if not final:
            return self._trades[:q].copy()
        out = np.empty((q + len(self.symbols), 11))
        out[:q] = self._trades[:q]
        count = self._count.copy()
        core.record_open(self._n - 1, self._book, self._tr, out, count)
        return out[: count[core.N_TRADES]]


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"PaperAccount: {name} must be finite and > 0 (got {value!r})")


def _grown(arr: np.ndarray, used: int, axis: int = 0, rows: int = 0) -> np.ndarray:
    """``arr`` with twice the rows (or ``rows``) along ``axis``, the first ``used`` kept."""
    shape = list(arr.shape)
    shape[axis] = max(rows, 2 * shape[axis])
    out = np.empty(shape, dtype=arr.dtype)
    index = (slice(None),) * axis + (slice(0, used),)
    out[index] = arr[index]
    return out


@njit(cache=True)
def _ingest(
    t: int,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    tgt: FloatArray,
    logc: FloatArray,
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: FloatArray,
    slip: FloatArray,
    rets: FloatArray,
    held: npt.NDArray[np.int64],
    last_log: FloatArray,
    scratch: FloatArray,
    rate: float,
    vol_mult: float,
    window: int,
    fill_at_close: bool,
) -> tuple[int, int]:
    """Check a row as ``simulate_portfolio`` checks its arrays, then store it with its
    adverse rates; returns ``(error code, symbol)``, and changes nothing on an error.

    The rate of a present bar is ``rate + vol_mult * vol`` with ``vol`` the standard
    deviation (ddof 1) of the symbol's last ``window`` close-to-close log returns through
    the previous close (``next_open``) or this one (``close``), 0 before there are
    ``window`` of them: ``CostModel.adverse_rates`` on the closes seen so far, exactly.
    """
    m = o.shape[0]
    for i in range(m):
        missing = np.isnan(o[i])
        if np.isnan(h[i]) != missing or np.isnan(lo[i]) != missing or np.isnan(c[i]) != missing:
            return 1, i
        if np.isinf(tgt[i]):
            return 4, i
        if missing:
            continue
        for x in (o[i], h[i], lo[i], c[i]):
            if not (np.isfinite(x) and x > 0.0):
                return 2, i
        if h[i] < max(o[i], c[i]) or lo[i] > min(o[i], c[i]):
            return 3, i
    size = rets.shape[1]
    for i in range(m):
        slip[t, i] = rate
        if np.isnan(c[i]) or vol_mult == 0.0:
            continue
        k = held[i]
        if fill_at_close and k + 1 >= window:  # through this close
            scratch[: window - 1] = rets[i, k - window + 1 : k]
            scratch[window - 1] = logc[i] - last_log[i]
        elif not fill_at_close and k >= window:  # through the previous close
            scratch[:] = rets[i, k - window : k]
        else:
            continue
        slip[t, i] = rate + vol_mult * _std(scratch)
        if slip[t, i] >= 1.0:
            return 5, i
    for i in range(m):
        open_[t, i] = o[i]
        high[t, i] = h[i]
        low[t, i] = lo[i]
        close[t, i] = c[i]
        target[t, i] = tgt[i]
        if np.isnan(c[i]):
            continue
        if not np.isnan(last_log[i]):
            if held[i] == size:  # keep the last window - 1, oldest first
                rets[i, : window - 1] = rets[i, size - window + 1 :]
                held[i] = window - 1
            rets[i, held[i]] = logc[i] - last_log[i]
            held[i] += 1
        last_log[i] = logc[i]
    return 0, 0


@njit(cache=True)
def _std(x: FloatArray) -> float:
    """``np.std(x, ddof=1)`` with numpy's pairwise sums, so it matches bit for bit; ``x`` is
    scratch (overwritten)."""
    n = x.shape[0]
    mean = _pairwise(x, 0, n) / n
    for i in range(n):
        d = x[i] - mean
        x[i] = d * d
    return math.sqrt(_pairwise(x, 0, n) / (n - 1))


@njit(cache=True)
def _pairwise(a: FloatArray, lo: int, n: int) -> float:
    """numpy's pairwise summation of ``a[lo : lo + n]``: blocks of up to 128 summed with 8
    accumulators, longer runs split in halves (a multiple of 8 first) and the halves added.

    The halving runs on an explicit stack: numba's cache cannot load a recursive function.
    """
    los = np.empty(192, dtype=np.int64)  # frames (lo, n, expanded): 3 per halving, <= 64
    ns = np.empty(192, dtype=np.int64)
    expanded = np.zeros(192, dtype=np.bool_)
    sums = np.empty(64)
    los[0], ns[0], expanded[0] = lo, n, False
    top, done = 1, 0
    while top:
        top -= 1
        start, size = los[top], ns[top]
        if size <= 128:
            sums[done] = _block(a, start, size)
            done += 1
        elif expanded[top]:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]  # left + right
        else:
            half = size // 2
            half -= half % 8
            expanded[top] = True
            top += 1
            los[top], ns[top], expanded[top] = start + half, size - half, False  # right
            los[top + 1], ns[top + 1], expanded[top + 1] = start, half, False  # left, first
            top += 2
    return sums[0]


@njit(cache=True)
def _block(a: FloatArray, lo: int, n: int) -> float:
    """numpy's sum of up to 128 numbers: in order below 8, else 8 interleaved accumulators."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r = a[lo : lo + 8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += a[lo + i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[lo + i]
        i += 1
    return res
