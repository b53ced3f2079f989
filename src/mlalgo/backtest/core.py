"""The numba core of the backtest: many instruments, one cash account, bar by bar.

Arrays in, arrays out; no pandas, no I/O. :func:`mlalgo.backtest.engine.simulate` (one
instrument) and :func:`mlalgo.backtest.runner.run` (a DataFrame of bars) are thin shells over
:func:`portfolio_core`, and the parameter sweep calls it once per parameter set, so every
number the project reports comes from this one loop.

Inputs are ``(n, m)`` arrays: ``n`` bars on a shared calendar, ``m`` instruments. A NaN price
means the instrument has no bar then: it neither fills nor triggers a stop, and its position
is marked at its last close; a decision due to fill then waits for the instrument's
next bar (a newer decision replaces it).

What happens on bar ``t``, in time order (``next_open`` fills; ``close`` fills skip step 3
and fill at step 5 instead):

1. **Pending flattens.** A kill switch or daily-loss breach decided at the previous close
   flattens every position at this open.
2. **Gaps.** A position held over from the previous bar whose stop-loss, trailing stop or
   take-profit lies beyond this open exits at the open.
3. **Decisions** taken at close ``t - 1`` fill at the open when the target differs from the
   one that produced the current position (NaN keeps the position).
4. **Intrabar exits.** Every open position checks its levels against the bar's low and high:
   the stops first (the conservative reading of a bar that touched both), then the
   take-profit. The stop level is the higher of the stop-loss (from the trade's entry fill)
   and the trailing stop (from the best high, for a short the best low, seen on earlier bars
   of the trade, or the entry fill on its first bar).
5. **Close fills** (``fill="close"`` only): decisions taken at this close fill at it.
6. **Mark and borrow**: equity is cash plus every position at its last close; shorts held
   over the close pay borrow.
7. **Account limits.** Equity at or below ``(1 - max_drawdown)`` times its running peak
   trips the kill switch: everything is flattened (at the next open, or at once with close
   fills) and nothing trades for the rest of the run. Equity at or below
   ``(1 - max_daily_loss)`` times the equity at the last close of the previous day flattens
   everything the same way, and decisions taken on the rest of that day are ignored.

After a stop or take-profit the instrument stays flat until its target changes, so a
standing signal does not walk straight back into the trade it just left; after a daily-loss
flatten the next day's decisions trade again.

The account's state between bars is explicit (:func:`new_state`), and :func:`advance`
moves it through any range of bars: :func:`run_into` is that state, advanced through every
bar, and the trades still open recorded at the end (:func:`record_open`); the paper broker
advances the same state one bar at a time, so live replay and backtest agree by construction.

Sizing turns a target into units at the fill price ``p`` (slipped in the trade's direction)
with ``E`` the account's equity at this bar's fill prices:

* ``fraction``: ``target * (E - fixed) / (p * (1 + c))``, the commission reserved;
* ``whole``: the same, floored to whole units, with the instrument's own position counted as
  closed first (see :mod:`mlalgo.backtest.engine`);
* ``units``: ``target * unit_size`` units, whatever the equity.

Then ``max_position`` caps each instrument's ``|units * p|`` at that fraction of ``E``,
``max_leverage`` scales the instruments that trade so the gross exposure stays within
``max_leverage * E``, and a trade smaller than ``min_trade * E`` is skipped (the position is
deemed on target). Stop and trailing fills pay slippage like any market order; a take-profit
is a limit order and fills at its level (at the open if the bar gapped beyond it) without
slippage. Every fill pays commission.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "EXIT_REASONS",
    "REASON_DAILY_LOSS",
    "REASON_END",
    "REASON_KILL_SWITCH",
    "REASON_SIGNAL",
    "REASON_STOP_LOSS",
    "REASON_TAKE_PROFIT",
    "REASON_TRAILING_STOP",
    "SIZING_CODES",
    "advance",
    "new_state",
    "pack_params",
    "portfolio_core",
    "record_open",
    "run_into",
]

REASON_SIGNAL = 0
REASON_STOP_LOSS = 1
REASON_TAKE_PROFIT = 2
REASON_TRAILING_STOP = 3
REASON_KILL_SWITCH = 4
REASON_DAILY_LOSS = 5
REASON_END = 6  # an open trade at the last bar
EXIT_REASONS = (
    "signal",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "kill_switch",
    "daily_loss",
    "open",
)
SIZING_CODES = {"fraction": 0, "whole": 1, "units": 2}

# Columns of the open-trade state ``tr``, one row per instrument.
ENTRY, DIR, SIZE, PRICE, FLOW, COMM, BORROW, BEST = range(8)
# Slots of ``params``, the run's constants (see :func:`pack_params`).
(
    COMM_RATE,
    COMM_FIXED,
    BORROW_RATE,
    FILL_AT_CLOSE,
    SIZING,
    UNIT_SIZE,
    MAX_POSITION,
    MAX_LEVERAGE,
    MIN_TRADE,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING_STOP,
    MAX_DRAWDOWN,
    MAX_DAILY_LOSS,
) = range(14)
# The account's state between bars (see :func:`new_state`): ``acct`` (float) ...
CASH, PEAK, DAY_START = range(3)
# ... ``count`` (int; its first two slots are the rows of ``fills`` and ``trades`` written) ...
N_FILLS, N_TRADES, KILLED_AT, KILLED, HALTED, HALTED_DAY = range(6)
# ... ``book`` (float, a row per field, a column per instrument; WANT and PX_SIDE are scratch) ...
UNITS, LAST, MARK, PENDING, WANT, PX_SIDE = range(6)
# ... and ``flags`` (bool, likewise; CHANGING is scratch).
PENDING_FLAT, CHANGING = range(2)

# Relative size below which a negative cash balance is floating-point dust from an all-in buy.
_CASH_DUST = 1e-12

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def _whole_units(
    signal: float, others: float, units: float, price: float, comm_rate: float, fixed: float
) -> float:
    """Whole units for ``signal`` once this position is closed at ``price``, commission paid.

    ``others`` is the cash plus every other instrument's value.
    """
    free = others + units * price - abs(units) * price * comm_rate - fixed
    if free <= 0.0:  # a bankrupt account can only close out
        return 0.0
    return math.copysign((abs(signal) * free) // (price * (1.0 + comm_rate)), signal)


@njit(cache=True)
def _capacity(target: FloatArray, day: IntArray, daily_loss: bool) -> int:
    """An upper bound on fills: each target change opens at most one position, and each
    position closes once; a daily-loss flatten can re-open a standing target once a day."""
    n, m = target.shape
    changes = 0
    if daily_loss:
        days = 1
        for t in range(1, n):
            if day[t] != day[t - 1]:
                days += 1
        changes += m * days
    for i in range(m):
        last = 0.0
        for t in range(n):
            v = target[t, i]
            if not np.isnan(v) and v != last:
                changes += 1
                last = v
    return 2 * changes + 2 * m + 2


@njit(cache=True)
def portfolio_core(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: FloatArray,
    day: IntArray,
    cash0: float,
    comm_rate: float,
    comm_fixed: float,
    slip: FloatArray,
    borrow_rate: float,
    fill_at_close: bool,
    sizing: int,
    unit_size: float,
    max_position: float,
    max_leverage: float,
    min_trade: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    max_drawdown: float,
    max_daily_loss: float,
    capacity: int = -1,
) -> tuple:  # type: ignore[type-arg]
    """Run the account through every bar; limits of 0 (or inf for caps) are switched off.

    ``capacity`` bounds the number of fills (see :func:`_capacity`, which computes it with a
    pass over the targets when it is negative); a caller that built the targets can count.

    Returns ``(equity, cash, units, fills, n_fills, trades, n_trades, killed_at)``: ``fills``
    has columns bar, asset, units, price, commission, reason; ``trades`` has columns asset,
    entry_bar, exit_bar, direction, units, entry_price, exit_price, pnl, commission, borrow,
    exit_reason (float-coded, the shell casts them).
    """
    n, m = close.shape
    cap = capacity if capacity >= 0 else _capacity(target, day, max_daily_loss > 0.0)
    equity = np.empty(n)
    cash_out = np.empty(n)
    units_out = np.empty((n, m))
    fills = np.empty((cap, 6))
    trades = np.empty((cap + m, 11))
    k, q, killed_at = run_into(
        open_,
        high,
        low,
        close,
        target,
        day,
        cash0,
        comm_rate,
        comm_fixed,
        slip,
        borrow_rate,
        fill_at_close,
        sizing,
        unit_size,
        max_position,
        max_leverage,
        min_trade,
        stop_loss,
        take_profit,
        trailing_stop,
        max_drawdown,
        max_daily_loss,
        equity,
        cash_out,
        units_out,
        fills,
        trades,
    )
    return equity, cash_out, units_out, fills, k, trades, q, killed_at


@njit(cache=True)
def run_into(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: FloatArray,
    day: IntArray,
    cash0: float,
    comm_rate: float,
    comm_fixed: float,
    slip: FloatArray,
    borrow_rate: float,
    fill_at_close: bool,
    sizing: int,
    unit_size: float,
    max_position: float,
    max_leverage: float,
    min_trade: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    max_drawdown: float,
    max_daily_loss: float,
    equity: FloatArray,
    cash_out: FloatArray,
    units_out: FloatArray,
    fills: FloatArray,
    trades: FloatArray,
) -> tuple[int, int, int]:
    """:func:`portfolio_core` into the caller's arrays, so a sweep reuses one set per thread.

    ``fills`` and ``trades`` need the rows :func:`_capacity` bounds (``trades`` ``m`` more).
    Returns ``(n_fills, n_trades, killed_at)``.
    """
    n, m = close.shape
    params = pack_params(
        comm_rate,
        comm_fixed,
        borrow_rate,
        fill_at_close,
        sizing,
        unit_size,
        max_position,
        max_leverage,
        min_trade,
        stop_loss,
        take_profit,
        trailing_stop,
        max_drawdown,
        max_daily_loss,
    )
    acct, count, book, flags, tr = new_state(m, cash0)
    units, last, mark, pending, want, px_side = book
    pending_flat, changing = flags
    advance(
        0,
        n,
        open_,
        high,
        low,
        close,
        target,
        day,
        slip,
        params,
        acct,
        count,
        units,
        last,
        mark,
        pending,
        want,
        px_side,
        pending_flat,
        changing,
        tr,
        fills,
        trades,
        equity,
        cash_out,
        units_out,
    )
    record_open(n - 1, book, tr, trades, count)
    return count[N_FILLS], count[N_TRADES], count[KILLED_AT]


@njit(cache=True)
def pack_params(
    comm_rate: float,
    comm_fixed: float,
    borrow_rate: float,
    fill_at_close: bool,
    sizing: int,
    unit_size: float,
    max_position: float,
    max_leverage: float,
    min_trade: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    max_drawdown: float,
    max_daily_loss: float,
) -> FloatArray:
    """The constants of a run as the ``params`` array of :func:`step` (a slot per argument,
    named by the constants), which keeps :func:`advance` under numba's 30 arguments for inlining."""
    params = np.empty(14)
    params[COMM_RATE] = comm_rate
    params[COMM_FIXED] = comm_fixed
    params[BORROW_RATE] = borrow_rate
    params[FILL_AT_CLOSE] = 1.0 if fill_at_close else 0.0
    params[SIZING] = sizing
    params[UNIT_SIZE] = unit_size
    params[MAX_POSITION] = max_position
    params[MAX_LEVERAGE] = max_leverage
    params[MIN_TRADE] = min_trade
    params[STOP_LOSS] = stop_loss
    params[TAKE_PROFIT] = take_profit
    params[TRAILING_STOP] = trailing_stop
    params[MAX_DRAWDOWN] = max_drawdown
    params[MAX_DAILY_LOSS] = max_daily_loss
    return params


@njit(cache=True)
def new_state(m: int, cash0: float) -> tuple:  # type: ignore[type-arg]
    """A flat account with ``cash0`` in cash, before its first bar: the arguments
    ``acct, count, book, flags, tr`` of :func:`step` (see the constants named after their
    slots)."""
    acct = np.empty(3)
    acct[CASH] = cash0
    acct[PEAK] = cash0
    acct[DAY_START] = cash0
    count = np.zeros(6, dtype=np.int64)
    count[KILLED_AT] = -1
    count[HALTED_DAY] = -1
    book = np.zeros((6, m))
    book[MARK] = np.nan  # no close seen yet
    book[PENDING] = np.nan  # no decision waiting
    flags = np.zeros((2, m), dtype=np.bool_)
    tr = np.zeros((m, 8))
    return acct, count, book, flags, tr


@njit(cache=True, inline="always")
def advance(
    start: int,
    stop: int,
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    target: FloatArray,
    day: IntArray,
    slip: FloatArray,
    params: FloatArray,
    acct: FloatArray,
    count: IntArray,
    units: FloatArray,
    last: FloatArray,
    mark: FloatArray,
    pending: FloatArray,
    want: FloatArray,
    px_side: FloatArray,
    pending_flat: npt.NDArray[np.bool_],
    changing: npt.NDArray[np.bool_],
    tr: FloatArray,
    fills: FloatArray,
    trades: FloatArray,
    equity: FloatArray,
    cash_out: FloatArray,
    units_out: FloatArray,
) -> None:
    """Advance the account through bars ``start .. stop - 1``: the seven steps above, per bar.

    The account lives in the state arrays (:func:`new_state`; ``units .. changing`` are the
    rows of its ``book`` and ``flags``), so a run can stop after any bar and go on later with
    the same result: :func:`run_into` advances through every bar at once, the paper broker
    (:mod:`mlalgo.live.paper`) one bar at a time as bars arrive. Bar ``t`` reads rows ``t``
    and ``t - 1`` of the market arrays, writes row ``t`` of ``equity``, ``cash_out`` and
    ``units_out`` and reads ``equity[t - 1]`` back at a new day; ``fills`` and ``trades``
    need room for ``5 * m`` more rows per bar.

    The loop over bars is inside rather than around this function: a call per bar costs
    more than a bar (numba counts references to each of the arrays passed, on every call).
    """
    comm_rate = params[COMM_RATE]
    comm_fixed = params[COMM_FIXED]
    borrow_rate = params[BORROW_RATE]
    fill_at_close = params[FILL_AT_CLOSE] != 0.0
    sizing = int(params[SIZING])
    unit_size = params[UNIT_SIZE]
    max_position = params[MAX_POSITION]
    max_leverage = params[MAX_LEVERAGE]
    min_trade = params[MIN_TRADE]
    stop_loss = params[STOP_LOSS]
    take_profit = params[TAKE_PROFIT]
    trailing_stop = params[TRAILING_STOP]
    max_drawdown = params[MAX_DRAWDOWN]
    max_daily_loss = params[MAX_DAILY_LOSS]
    m = close.shape[1]
    cash = acct[CASH]
    peak = acct[PEAK]
    day_start = acct[DAY_START]
    killed = count[KILLED] != 0
    killed_at = count[KILLED_AT]
    halted = count[HALTED] != 0
    halted_day = count[HALTED_DAY]
    exits = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0

    for t in range(start, stop):
        if t > 0 and day[t] != day[t - 1]:
            day_start = equity[t - 1]

        # 1. pending flattens (next_open mode) ---------------------------------------------
        # 2. gaps through exit levels at the open -------------------------------------------
        for i in range(m):
            o = open_[t, i]
            if np.isnan(o) or units[i] == 0.0:
                continue
            reason = -1
            px = o
            if pending_flat[i]:
                reason = REASON_KILL_SWITCH if killed else REASON_DAILY_LOSS
            elif exits:
                reason = _exit_reason(
                    units[i], o, o, tr[i, PRICE], tr[i, BEST], stop_loss, trailing_stop, take_profit
                )
            if reason < 0:
                continue
            fill_px = _exit_price(units[i], px, slip[t, i], reason)
            cash = _fill(
                t,
                i,
                0.0,
                fill_px,
                reason,
                cash,
                units,
                comm_rate,
                comm_fixed,
                fills,
                trades,
                count,
                tr,
            )
            pending_flat[i] = False
            if reason in (REASON_DAILY_LOSS, REASON_KILL_SWITCH):
                last[i] = 0.0
        for i in range(m):
            if units[i] == 0.0:
                pending_flat[i] = False

        # 3. decisions of the previous close fill at this open -----------------------------
        # (checked here rather than in _rebalance: most bars change nothing, and a call
        # costs more than the whole bar otherwise does)
        due = not fill_at_close and t > 0 and not killed
        due = due and not (halted and day[t - 1] == halted_day)
        if due:
            due = False
            for i in range(m):
                sig = target[t - 1, i]
                if not np.isnan(pending[i]) or (not np.isnan(sig) and sig != last[i]):
                    due = True
                    break
        if due:
            cash = _rebalance(
                t,
                t - 1,
                open_,
                target,
                cash,
                units,
                last,
                mark,
                slip,
                comm_rate,
                comm_fixed,
                sizing,
                unit_size,
                max_position,
                max_leverage,
                min_trade,
                pending,
                want,
                px_side,
                changing,
                fills,
                trades,
                count,
                tr,
            )

        # 4. intrabar stops and take-profits ----------------------------------------------
        for i in range(m):
            if not exits or units[i] == 0.0 or np.isnan(close[t, i]):
                continue
            lo = low[t, i]
            hi = high[t, i]
            if units[i] > 0.0:
                reason = _exit_reason(
                    units[i],
                    lo,
                    hi,
                    tr[i, PRICE],
                    tr[i, BEST],
                    stop_loss,
                    trailing_stop,
                    take_profit,
                )
            else:
                reason = _exit_reason(
                    units[i],
                    hi,
                    lo,
                    tr[i, PRICE],
                    tr[i, BEST],
                    stop_loss,
                    trailing_stop,
                    take_profit,
                )
            if reason >= 0:
                level = _level(
                    units[i],
                    tr[i, PRICE],
                    tr[i, BEST],
                    stop_loss,
                    trailing_stop,
                    take_profit,
                    reason,
                )
                o = open_[t, i]
                # a level the open is already beyond fills at the open
                if units[i] > 0.0:
                    px = min(level, o) if reason != REASON_TAKE_PROFIT else max(level, o)
                else:
                    px = max(level, o) if reason != REASON_TAKE_PROFIT else min(level, o)
                fill_px = _exit_price(units[i], px, slip[t, i], reason)
                cash = _fill(
                    t,
                    i,
                    0.0,
                    fill_px,
                    reason,
                    cash,
                    units,
                    comm_rate,
                    comm_fixed,
                    fills,
                    trades,
                    count,
                    tr,
                )
            elif units[i] > 0.0:
                tr[i, BEST] = max(tr[i, BEST], hi)
            else:
                tr[i, BEST] = min(tr[i, BEST], lo)

        # 5. decisions of this close fill at it -------------------------------------------
        due = fill_at_close and not killed and not (halted and day[t] == halted_day)
        if due:
            due = False
            for i in range(m):
                sig = target[t, i]
                if not np.isnan(pending[i]) or (not np.isnan(sig) and sig != last[i]):
                    due = True
                    break
        if due:
            cash = _rebalance(
                t,
                t,
                close,
                target,
                cash,
                units,
                last,
                mark,
                slip,
                comm_rate,
                comm_fixed,
                sizing,
                unit_size,
                max_position,
                max_leverage,
                min_trade,
                pending,
                want,
                px_side,
                changing,
                fills,
                trades,
                count,
                tr,
            )

        # 6. mark to market and borrow ----------------------------------------------------
        value = cash
        for i in range(m):
            c = close[t, i]
            if not np.isnan(c):
                mark[i] = c
            if units[i] != 0.0:
                if units[i] < 0.0 and borrow_rate > 0.0:  # a short held over a close
                    fee = -units[i] * mark[i] * borrow_rate
                    cash -= fee
                    value -= fee
                    tr[i, BORROW] += fee
                value += units[i] * mark[i]
        eq = value

        # 7. account limits ---------------------------------------------------------------
        if not killed:
            peak = max(peak, eq)
            breach = -1
            if max_drawdown > 0.0 and eq <= peak * (1.0 - max_drawdown):
                breach = REASON_KILL_SWITCH
                killed = True
                killed_at = t
            elif max_daily_loss > 0.0 and eq <= day_start * (1.0 - max_daily_loss):
                if not (halted and halted_day == day[t]):
                    breach = REASON_DAILY_LOSS
                halted = True
                halted_day = day[t]
            if breach >= 0:
                pending[:] = np.nan  # decided before the breach: void
                for i in range(m):
                    if units[i] == 0.0:
                        continue
                    if fill_at_close and not np.isnan(close[t, i]):
                        fill_px = _exit_price(units[i], close[t, i], slip[t, i], breach)
                        cash = _fill(
                            t,
                            i,
                            0.0,
                            fill_px,
                            breach,
                            cash,
                            units,
                            comm_rate,
                            comm_fixed,
                            fills,
                            trades,
                            count,
                            tr,
                        )
                        last[i] = 0.0
                    else:
                        pending_flat[i] = True
                if fill_at_close:
                    eq = cash
                    for i in range(m):
                        if units[i] != 0.0:
                            eq += units[i] * mark[i]
        equity[t] = eq
        cash_out[t] = cash
        for i in range(m):
            units_out[t, i] = units[i]

    acct[CASH] = cash
    acct[PEAK] = peak
    acct[DAY_START] = day_start
    count[KILLED] = killed
    count[KILLED_AT] = killed_at
    count[HALTED] = halted
    count[HALTED_DAY] = halted_day


@njit(cache=True)
def record_open(
    t: int, book: FloatArray, tr: FloatArray, trades: FloatArray, count: IntArray
) -> None:
    """Record the trades still open after bar ``t`` as exits at its marks, with no exit
    costs (reason ``REASON_END``): the end of a run, which leaves the positions as they are."""
    units = book[UNITS]
    mark = book[MARK]
    for i in range(units.shape[0]):
        if units[i] != 0.0:
            pnl = tr[i, FLOW] + units[i] * mark[i] - tr[i, BORROW]
            _record(
                trades,
                count,
                i,
                tr[i, ENTRY],
                t,
                tr[i, DIR],
                tr[i, SIZE],
                tr[i, PRICE],
                mark[i],
                pnl,
                tr[i, COMM],
                tr[i, BORROW],
                REASON_END,
            )


@njit(cache=True)
def _exit_reason(
    units: float,
    adverse: float,
    favourable: float,
    entry: float,
    best: float,
    stop_loss: float,
    trailing_stop: float,
    take_profit: float,
) -> int:
    """Which exit a price range touches: ``adverse`` is the low of a long (high of a short)."""
    if units > 0.0:
        stop = -np.inf
        reason = -1
        if stop_loss > 0.0:
            stop = entry * (1.0 - stop_loss)
            reason = REASON_STOP_LOSS
        if trailing_stop > 0.0 and best * (1.0 - trailing_stop) > stop:
            stop = best * (1.0 - trailing_stop)
            reason = REASON_TRAILING_STOP
        if reason >= 0 and adverse <= stop:
            return reason
        if take_profit > 0.0 and favourable >= entry * (1.0 + take_profit):
            return REASON_TAKE_PROFIT
        return -1
    stop = np.inf
    reason = -1
    if stop_loss > 0.0:
        stop = entry * (1.0 + stop_loss)
        reason = REASON_STOP_LOSS
    if trailing_stop > 0.0 and best * (1.0 + trailing_stop) < stop:
        stop = best * (1.0 + trailing_stop)
        reason = REASON_TRAILING_STOP
    if reason >= 0 and adverse >= stop:
        return reason
    if take_profit > 0.0 and favourable <= entry * (1.0 - take_profit):
        return REASON_TAKE_PROFIT
    return -1


@njit(cache=True)
def _level(
    units: float,
    entry: float,
    best: float,
    stop_loss: float,
    trailing_stop: float,
    take_profit: float,
    reason: int,
) -> float:
    side = 1.0 if units > 0.0 else -1.0
    if reason == REASON_STOP_LOSS:
        return entry * (1.0 - side * stop_loss)
    if reason == REASON_TRAILING_STOP:
        return best * (1.0 - side * trailing_stop)
    return entry * (1.0 + side * take_profit)


@njit(cache=True)
def _exit_price(units: float, price: float, slip: float, reason: int) -> float:
    """The price a closing order gets: a take-profit is a limit order and pays no slippage."""
    if reason == REASON_TAKE_PROFIT:
        return price
    return price * (1.0 - slip) if units > 0.0 else price * (1.0 + slip)


@njit(cache=True)
def _record(
    trades: FloatArray,
    count: IntArray,
    asset: int,
    entry_bar: float,
    exit_bar: int,
    direction: float,
    size: float,
    entry_price: float,
    exit_price: float,
    pnl: float,
    commission: float,
    borrow: float,
    reason: int,
) -> None:
    q = count[1]
    count[1] = q + 1
    trades[q, 0] = asset
    trades[q, 1] = entry_bar
    trades[q, 2] = exit_bar
    trades[q, 3] = direction
    trades[q, 4] = size
    trades[q, 5] = entry_price
    trades[q, 6] = exit_price
    trades[q, 7] = pnl
    trades[q, 8] = commission
    trades[q, 9] = borrow
    trades[q, 10] = reason


@njit(cache=True)
def _fill(
    t: int,
    i: int,
    after: float,
    price: float,
    reason: int,
    cash: float,
    units: FloatArray,
    comm_rate: float,
    comm_fixed: float,
    fills: FloatArray,
    trades: FloatArray,
    count: IntArray,
    tr: FloatArray,
) -> float:
    """Book a fill that takes instrument ``i`` to ``after`` units: cash, position, the fill
    row and the round trip it opens or closes.

    A flip's commission is split pro rata by units between the closing and the opening trade.
    """
    before = units[i]
    traded = after - before
    commission = abs(traded) * price * comm_rate + comm_fixed
    cash = cash - traded * price - commission
    units[i] = after
    k = count[0]
    count[0] = k + 1
    fills[k, 0] = t
    fills[k, 1] = i
    fills[k, 2] = traded
    fills[k, 3] = price
    fills[k, 4] = commission
    fills[k, 5] = reason
    opening = commission
    if before == 0.0:
        pass
    elif after == 0.0 or (after > 0.0) != (before > 0.0):
        closing = commission * abs(before) / (abs(before) + abs(after))
        pnl = tr[i, FLOW] + before * price - closing - tr[i, BORROW]
        _record(
            trades,
            count,
            i,
            tr[i, ENTRY],
            t,
            tr[i, DIR],
            tr[i, SIZE],
            tr[i, PRICE],
            price,
            pnl,
            tr[i, COMM] + closing,
            tr[i, BORROW],
            reason,
        )
        opening = commission - closing
    else:
        tr[i, FLOW] += -traded * price - commission
        tr[i, COMM] += commission
        return cash
    if after != 0.0:
        tr[i, ENTRY] = t
        tr[i, DIR] = 1.0 if after > 0.0 else -1.0
        tr[i, SIZE] = abs(after)
        tr[i, PRICE] = price
        tr[i, FLOW] = -after * price - opening
        tr[i, COMM] = opening
        tr[i, BORROW] = 0.0
        tr[i, BEST] = price
    return cash


@njit(cache=True)
def _rebalance(
    t: int,
    s: int,
    price: FloatArray,
    target: FloatArray,
    cash: float,
    units: FloatArray,
    last: FloatArray,
    mark: FloatArray,
    slip: FloatArray,
    comm_rate: float,
    comm_fixed: float,
    sizing: int,
    unit_size: float,
    max_position: float,
    max_leverage: float,
    min_trade: float,
    pending: FloatArray,
    want: FloatArray,
    px_side: FloatArray,
    changing: npt.NDArray[np.bool_],
    fills: FloatArray,
    trades: FloatArray,
    count: IntArray,
    tr: FloatArray,
) -> float:
    """Trade every instrument whose decision (taken at bar ``s``) changed, at ``price[t]``.

    A decision for an instrument without a bar at ``t`` is kept in ``pending`` and acted on
    at its next bar, unless a newer decision replaces it first.
    """
    m = units.shape[0]
    value = cash
    any_change = False
    for i in range(m):
        p = price[t, i]
        px = mark[i] if np.isnan(p) else p
        if units[i] != 0.0:
            value += units[i] * px
        sig = target[s, i]
        if not np.isnan(sig):
            pending[i] = sig
        changing[i] = False
        if not np.isnan(p):  # a decision waits for the instrument's next bar
            sig = pending[i]
            pending[i] = np.nan
            changing[i] = not np.isnan(sig) and sig != last[i]
            want[i] = sig
        any_change = any_change or changing[i]
    if not any_change:
        return cash
    free = value - comm_fixed  # a fixed ticket charge is reserved like the commission
    gross_fixed = 0.0  # exposure of the instruments that keep their position
    gross_new = 0.0
    for i in range(m):
        p = price[t, i]
        if not changing[i]:
            if units[i] != 0.0:
                px = mark[i] if np.isnan(p) else p
                gross_fixed += abs(units[i] * px)
            continue
        sig = want[i]
        last[i] = sig
        buy = p * (1.0 + slip[t, i])
        sell = p * (1.0 - slip[t, i])
        want_buy = 0.0
        want_sell = 0.0
        if sizing == 1:
            others = value - units[i] * p
            if m == 1:
                others = cash
            want_buy = _whole_units(sig, others, units[i], buy, comm_rate, comm_fixed)
            want_sell = _whole_units(sig, others, units[i], sell, comm_rate, comm_fixed)
        elif sizing == 2:
            want_buy = sig * unit_size
            want_sell = want_buy
        elif free > 0.0:  # a bankrupt account can only close out
            want_buy = sig * free / (buy * (1.0 + comm_rate))
            want_sell = sig * free / (sell * (1.0 + comm_rate))
        # The slipped price depends on the side and the side on the size: size at both
        # prices; a position already between the two sizes is on target and does not trade.
        new = units[i]
        px = p
        if want_buy > units[i]:
            new = want_buy
            px = buy
        elif want_sell < units[i]:
            new = want_sell
            px = sell
        if max_position < np.inf and value > 0.0 and abs(new) * px > max_position * value:
            new = math.copysign(max_position * value / px, new)
            if sizing == 1:
                new = math.copysign(math.floor(abs(new)), new)
        want[i] = new
        px_side[i] = px
        gross_new += abs(new) * px
    scale = 1.0
    if max_leverage < np.inf and gross_fixed + gross_new > max_leverage * max(value, 0.0):
        room = max(max_leverage * max(value, 0.0) - gross_fixed, 0.0)
        scale = room / gross_new if gross_new > 0.0 else 0.0
    for i in range(m):
        if not changing[i]:
            continue
        new = want[i]
        if scale < 1.0:
            new = new * scale
            if sizing == 1:
                new = math.copysign(math.floor(abs(new)), new)
        traded = new - units[i]
        if traded == 0.0:
            continue
        # A cap or the leverage scale can turn a buy into a sale (or move a position that sat
        # between its two sizes): the fill gets the slipped price of the way it trades.
        p = price[t, i]
        px_side[i] = p * (1.0 + slip[t, i]) if traded > 0.0 else p * (1.0 - slip[t, i])
        if min_trade > 0.0 and abs(traded) * px_side[i] < min_trade * value:
            continue
        cash = _fill(
            t,
            i,
            new,
            px_side[i],
            REASON_SIGNAL,
            cash,
            units,
            comm_rate,
            comm_fixed,
            fills,
            trades,
            count,
            tr,
        )
        if cash < 0.0 and cash > -_CASH_DUST * abs(value):  # rounding of an all-in buy
            cash = 0.0
    return cash
