"""A plain-Python account that follows the rules of :mod:`mlalgo.backtest.core`, one bar at a time.

It is written from the core's module docstring, for reading rather than speed: lists and
floats, one object per instrument, one method per step of a bar. The tests hold the numba core
to it. Where the docstring leaves a detail open, the rule is spelled out here:

* sizing: ``fraction`` sizes ``target * (E - fixed) / (p * (1 + c))`` at both slipped prices
  and buys (sells) when the size at the buy (sell) price lies above (below) the position; a
  position between the two is on target. ``whole`` floors ``|target| * F / (p * (1 + c))``
  with ``F`` the account's cash and other positions plus this position closed at ``p``, its
  commission and the fixed charge paid. ``units`` is ``target * unit_size``;
* the caps apply to that size: ``max_position`` caps ``|units| * p`` at ``max_position * E``,
  ``max_leverage`` scales every instrument that trades by one factor so the gross exposure
  (the others at their fill or last price) stays within ``max_leverage * E``; whole sizing
  floors again after either. A fill is priced by the direction it actually trades: a capped
  or scaled order that ends up selling sells at the sell price;
* a target is "taken" (recorded as the one behind the position) when it is processed, even
  if ``min_trade`` or the caps leave the position as it was; a decision for an instrument
  with no bar at the fill waits for its next bar, unless a newer one replaces it, and a
  kill-switch or daily-loss breach voids every waiting decision;
* a flip's commission is split between the closing and the opening trade by units;
* a stop or take-profit leaves the taken target in place (flat until the target changes); a
  kill-switch or daily-loss flatten resets it to 0 (a standing target re-enters the next day);
* borrow is charged at every close, absent bars included, on the last close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.portfolio import RiskLimits

NO_LIMITS = RiskLimits()
SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, KILL_SWITCH, DAILY_LOSS, END = range(7)
REASON_NAMES = (
    "signal",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "kill_switch",
    "daily_loss",
    "open",
)
CASH_DUST = 1e-12  # a negative cash this small relative to equity is an all-in buy's rounding

Fill = tuple[int, int, float, float, float, int]  # bar, asset, units, price, commission, reason
# asset, entry bar, exit bar, direction, units, entry price, exit price, pnl, commission,
# borrow, exit reason
TradeRow = tuple[int, int, int, int, float, float, float, float, float, float, int]


@dataclass
class RoundTrip:
    """The open trade of one instrument."""

    entry_bar: int
    direction: int
    size: float
    entry_price: float
    flow: float  # cash received minus cash paid by its fills, commissions included
    commission: float
    best: float  # best high (long) or low (short) of the earlier bars, or the entry price
    borrow: float = 0.0


@dataclass
class Holding:
    units: float = 0.0
    taken: float = 0.0  # the target behind the position
    mark: float = math.nan  # last close seen
    trade: RoundTrip | None = None
    flatten_at_next_open: bool = False
    pending: float = math.nan  # a decision still waiting for this instrument's next bar


@dataclass
class Result:
    equity: list[float]
    cash: list[float]
    units: list[list[float]]
    fills: list[Fill]
    trades: list[TradeRow]
    killed_at: int


@dataclass
class Limits:
    """RiskLimits with None read as "off"."""

    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    max_drawdown: float = 0.0
    max_daily_loss: float = 0.0
    max_position: float = math.inf
    max_leverage: float = math.inf

    @classmethod
    def of(cls, limits: RiskLimits) -> Limits:
        out = cls()
        for name in vars(out):
            value = getattr(limits, name)
            if value is not None:
                setattr(out, name, float(value))
        return out


def sample_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def adverse_moves(close: list[float], cost: CostModel, at_close: bool) -> list[float]:
    """Slippage plus half spread plus ``slippage_vol`` times the volatility known at the fill:
    the last ``vol_window`` log returns between the instrument's bars, through this close for
    a fill at the close, through the previous bar's close for a fill at the open."""
    moves = [cost.slippage_rate] * len(close)
    returns: list[float] = []
    previous = math.nan
    w = cost.vol_window
    for t, c in enumerate(close):
        if math.isnan(c):
            continue
        known = list(returns)
        if not math.isnan(previous):
            returns.append(math.log(c / previous))
        previous = c
        if at_close:
            known = returns
        vol = sample_std(known[-w:]) if len(known) >= w else 0.0
        moves[t] = cost.slippage_rate + cost.slippage_vol * vol
    return moves


def whole_units(
    target: float, others: float, units: float, price: float, c: float, fixed: float
) -> float:
    """Whole units for ``target`` once this position is closed at ``price`` and paid for."""
    free = others + units * price - abs(units) * price * c - fixed
    if free <= 0.0:
        return 0.0
    return math.copysign((abs(target) * free) // (price * (1.0 + c)), target)


@dataclass
class Account:
    open_: list[list[float]]
    high: list[list[float]]
    low: list[list[float]]
    close: list[list[float]]
    target: list[list[float]]
    day: list[int]
    cash: float
    cost: CostModel
    at_close: bool
    sizing: str
    unit_size: float
    min_trade: float
    limits: Limits
    borrow_rate: float
    slip: list[list[float]] = field(init=False)  # slip[i][t]
    book: list[Holding] = field(init=False)
    fills: list[Fill] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = len(self.close[0])
        columns = [[row[i] for row in self.close] for i in range(m)]
        self.slip = [adverse_moves(col, self.cost, self.at_close) for col in columns]
        self.book = [Holding() for _ in range(m)]

    # -- one fill --------------------------------------------------------------------------

    def fill(self, t: int, i: int, after: float, price: float, reason: int) -> None:
        """Take instrument ``i`` to ``after`` units at ``price``; book the round trips."""
        h = self.book[i]
        before = h.units
        traded = after - before
        commission = abs(traded) * price * self.cost.commission_rate + self.cost.commission_fixed
        self.cash = self.cash - traded * price - commission
        h.units = after
        self.fills.append((t, i, traded, price, commission, reason))

        opening_share = commission
        trade = h.trade
        if trade is not None:
            closes = after == 0.0 or (after > 0.0) != (before > 0.0)
            if not closes:  # scaling in or out keeps the trade open
                trade.flow += -traded * price - commission
                trade.commission += commission
                return
            closing_share = commission * abs(before) / (abs(before) + abs(after))
            opening_share = commission - closing_share
            pnl = trade.flow + before * price - closing_share - trade.borrow
            self.trades.append(
                (
                    i,
                    trade.entry_bar,
                    t,
                    trade.direction,
                    trade.size,
                    trade.entry_price,
                    price,
                    pnl,
                    trade.commission + closing_share,
                    trade.borrow,
                    reason,
                )
            )
            h.trade = None
        if after != 0.0:
            h.trade = RoundTrip(
                entry_bar=t,
                direction=1 if after > 0.0 else -1,
                size=abs(after),
                entry_price=price,
                flow=-after * price - opening_share,
                commission=opening_share,
                best=price,
            )

    def close_out(self, t: int, i: int, price: float, reason: int) -> None:
        """A market exit at ``price`` (slipped against the position); a take-profit is a limit
        order and gets its price."""
        h = self.book[i]
        if reason != TAKE_PROFIT:
            s = self.slip[i][t]
            price = price * (1.0 - s) if h.units > 0.0 else price * (1.0 + s)
        self.fill(t, i, 0.0, price, reason)

    # -- exit levels -----------------------------------------------------------------------

    def stop_level(self, h: Holding) -> tuple[float, int] | None:
        """The tighter of the stop-loss and the trailing stop (the stop-loss on a tie)."""
        assert h.trade is not None
        lim = self.limits
        side = h.trade.direction
        levels = []
        if lim.stop_loss > 0.0:
            levels.append((h.trade.entry_price * (1.0 - side * lim.stop_loss), STOP_LOSS))
        if lim.trailing_stop > 0.0:
            levels.append((h.trade.best * (1.0 - side * lim.trailing_stop), TRAILING_STOP))
        if not levels:
            return None
        if len(levels) == 2:
            (sl, _), (trail, _) = levels
            tighter = trail > sl if side > 0 else trail < sl
            return levels[1] if tighter else levels[0]
        return levels[0]

    def take_level(self, h: Holding) -> float | None:
        assert h.trade is not None
        if self.limits.take_profit <= 0.0:
            return None
        return h.trade.entry_price * (1.0 + h.trade.direction * self.limits.take_profit)

    def exit_hit(self, h: Holding, worst: float, best: float) -> tuple[int, float] | None:
        """(reason, level) of the exit a price range from ``worst`` to ``best`` (for the
        position) touches: the stop first, then the take-profit."""
        assert h.trade is not None
        side = h.trade.direction
        stop = self.stop_level(h)
        if stop is not None and side * (worst - stop[0]) <= 0.0:
            return stop[1], stop[0]
        take = self.take_level(h)
        if take is not None and side * (best - take) >= 0.0:
            return TAKE_PROFIT, take
        return None

    # -- the steps of a bar ----------------------------------------------------------------

    def exits_at_the_open(self, t: int, killed: bool) -> None:
        for i, h in enumerate(self.book):
            o = self.open_[t][i]
            if math.isnan(o) or h.units == 0.0:
                continue
            if h.flatten_at_next_open:
                self.close_out(t, i, o, KILL_SWITCH if killed else DAILY_LOSS)
                h.taken = 0.0
            else:
                hit = self.exit_hit(h, o, o)
                if hit is not None:
                    self.close_out(t, i, o, hit[0])
        for h in self.book:
            if h.units == 0.0:
                h.flatten_at_next_open = False

    def exits_within_the_bar(self, t: int) -> None:
        for i, h in enumerate(self.book):
            if h.units == 0.0 or math.isnan(self.close[t][i]):
                continue
            assert h.trade is not None
            o, hi, lo = self.open_[t][i], self.high[t][i], self.low[t][i]
            worst, best = (lo, hi) if h.units > 0.0 else (hi, lo)
            hit = self.exit_hit(h, worst, best)
            if hit is None:  # the bar's extreme counts for the trailing stop from now on
                if h.units > 0.0:
                    h.trade.best = max(h.trade.best, hi)
                else:
                    h.trade.best = min(h.trade.best, lo)
                continue
            reason, level = hit
            # an open already beyond the level fills at the open
            if reason == TAKE_PROFIT:
                price = max(level, o) if h.units > 0.0 else min(level, o)
            else:
                price = min(level, o) if h.units > 0.0 else max(level, o)
            self.close_out(t, i, price, reason)

    def size(
        self, t: int, i: int, decision: float, p: float, equity: float, others: float
    ) -> tuple[float, float]:
        """Units for ``decision`` at fill price ``p`` before the caps, and the price it trades."""
        h = self.book[i]
        c, fixed = self.cost.commission_rate, self.cost.commission_fixed
        buy = p * (1.0 + self.slip[i][t])
        sell = p * (1.0 - self.slip[i][t])

        def units_at(price: float) -> float:
            if self.sizing == "units":
                return decision * self.unit_size
            if self.sizing == "whole":
                return whole_units(decision, others, h.units, price, c, fixed)
            free = equity - fixed
            return decision * free / (price * (1.0 + c)) if free > 0.0 else 0.0

        at_buy, at_sell = units_at(buy), units_at(sell)
        if at_buy > h.units:
            new, price = at_buy, buy
        elif at_sell < h.units:
            new, price = at_sell, sell
        else:
            new, price = h.units, p
        cap = self.limits.max_position
        if equity > 0.0 and abs(new) * price > cap * equity:
            new = math.copysign(cap * equity / price, new)
            if self.sizing == "whole":
                new = math.copysign(math.floor(abs(new)), new)
        return new, price

    def rebalance(self, t: int, decisions: list[float], prices: list[float]) -> None:
        """Trade every instrument whose decision differs from the target behind its position."""
        book = self.book
        # the account at the fill prices (an instrument without a bar at its last close)
        at = [h.mark if math.isnan(p) else p for h, p in zip(book, prices, strict=True)]
        equity = self.cash
        for h, p in zip(book, at, strict=True):
            if h.units != 0.0:
                equity += h.units * p
        decisions = list(decisions)
        for i, h in enumerate(book):  # a decision waits for its instrument's next bar
            if not math.isnan(decisions[i]):
                h.pending = decisions[i]
            if math.isnan(prices[i]):
                decisions[i] = math.nan
            else:
                decisions[i], h.pending = h.pending, math.nan
        movers = [
            i
            for i, h in enumerate(book)
            if not math.isnan(decisions[i]) and decisions[i] != h.taken
        ]
        if not movers:
            return
        wanted: dict[int, tuple[float, float]] = {}
        for i in movers:
            others = self.cash + sum(
                h.units * at[j] for j, h in enumerate(book) if j != i and h.units != 0.0
            )
            wanted[i] = self.size(t, i, decisions[i], prices[i], equity, others)
            book[i].taken = decisions[i]
        held = sum(
            abs(h.units * at[j]) for j, h in enumerate(book) if j not in wanted and h.units != 0.0
        )
        gross = sum(abs(new) * price for new, price in wanted.values())
        lev = self.limits.max_leverage
        scale = 1.0
        if held + gross > lev * max(equity, 0.0):
            room = max(lev * max(equity, 0.0) - held, 0.0)
            scale = room / gross if gross > 0.0 else 0.0
        for i in movers:
            h = book[i]
            new = wanted[i][0]
            if scale < 1.0:
                new = new * scale
                if self.sizing == "whole":
                    new = math.copysign(math.floor(abs(new)), new)
            traded = new - h.units
            if traded == 0.0:
                continue
            s = self.slip[i][t]
            price = prices[i] * (1.0 + s) if traded > 0.0 else prices[i] * (1.0 - s)
            if abs(traded) * price < self.min_trade * equity:
                continue  # too small to bother: deemed on target
            self.fill(t, i, new, price, SIGNAL)
            if -CASH_DUST * abs(equity) < self.cash < 0.0:
                self.cash = 0.0

    def mark_and_borrow(self, t: int) -> float:
        for i, h in enumerate(self.book):
            c = self.close[t][i]
            if not math.isnan(c):
                h.mark = c
            if h.units < 0.0 and self.borrow_rate > 0.0:
                assert h.trade is not None
                fee = -h.units * h.mark * self.borrow_rate
                self.cash -= fee
                h.trade.borrow += fee
        return self.equity_at_marks()

    def equity_at_marks(self) -> float:
        equity = self.cash
        for h in self.book:
            if h.units != 0.0:
                equity += h.units * h.mark
        return equity

    def flatten_everything(self, t: int, reason: int) -> None:
        for i, h in enumerate(self.book):
            h.pending = math.nan  # decided before the breach: void
            if h.units == 0.0:
                continue
            if self.at_close and not math.isnan(self.close[t][i]):
                self.close_out(t, i, self.close[t][i], reason)
                h.taken = 0.0
            else:
                h.flatten_at_next_open = True

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Result:
        n = len(self.close)
        equity: list[float] = []
        cash: list[float] = []
        units: list[list[float]] = []
        killed_at = -1
        halted_days: set[int] = set()
        peak = day_start = self.cash
        lim = self.limits
        for t in range(n):
            killed = killed_at >= 0
            if t > 0 and self.day[t] != self.day[t - 1]:
                day_start = equity[-1]
            self.exits_at_the_open(t, killed)
            if not self.at_close and t > 0 and not killed and self.day[t - 1] not in halted_days:
                self.rebalance(t, self.target[t - 1], self.open_[t])
            self.exits_within_the_bar(t)
            if self.at_close and not killed and self.day[t] not in halted_days:
                self.rebalance(t, self.target[t], self.close[t])
            eq = self.mark_and_borrow(t)
            if not killed:
                peak = max(peak, eq)
                breach = None
                if lim.max_drawdown > 0.0 and eq <= peak * (1.0 - lim.max_drawdown):
                    killed_at = t
                    breach = KILL_SWITCH
                elif lim.max_daily_loss > 0.0 and eq <= day_start * (1.0 - lim.max_daily_loss):
                    breach = None if self.day[t] in halted_days else DAILY_LOSS
                    halted_days.add(self.day[t])
                if breach is not None:
                    self.flatten_everything(t, breach)
                    eq = self.equity_at_marks()
            equity.append(eq)
            cash.append(self.cash)
            units.append([h.units for h in self.book])
        for i, h in enumerate(self.book):  # still open: marked at the last close, no exit costs
            if h.trade is not None:
                tr = h.trade
                pnl = tr.flow + h.units * h.mark - tr.borrow
                self.trades.append(
                    (
                        i,
                        tr.entry_bar,
                        n - 1,
                        tr.direction,
                        tr.size,
                        tr.entry_price,
                        h.mark,
                        pnl,
                        tr.commission,
                        tr.borrow,
                        END,
                    )
                )
        return Result(equity, cash, units, self.fills, self.trades, killed_at)


def reference_portfolio(
    open_: list[list[float]],
    high: list[list[float]],
    low: list[list[float]],
    close: list[list[float]],
    target: list[list[float]],
    *,
    day: list[int] | None = None,
    cash: float = 1.0,
    cost: CostModel,
    fill: str = "next_open",
    sizing: str = "fraction",
    unit_size: float = 1.0,
    min_trade: float = 0.0,
    limits: RiskLimits = NO_LIMITS,
    periods_per_year: float = 252,
) -> Result:
    """Run the account over ``n`` bars of ``m`` instruments (lists of rows; NaN = no bar)."""
    n = len(close)
    return Account(
        open_=open_,
        high=high,
        low=low,
        close=close,
        target=target,
        day=list(range(n)) if day is None else list(day),
        cash=float(cash),
        cost=cost,
        at_close=fill == "close",
        sizing=sizing,
        unit_size=unit_size,
        min_trade=min_trade,
        limits=Limits.of(limits),
        borrow_rate=cost.borrow_bps * 1e-4 / periods_per_year,
    ).run()
