"""The live loop: closed bars in, orders out, each step journalled before it acts.

Feed -> :mod:`edge <mlalgo.live.edge>` validation -> rows (every symbol's bar of one bar time)
-> :class:`~mlalgo.live.signal.LiveSignal` (online features, the compiled model, the
backtest's ``decide``) -> risk gate -> order intents for ``target - current``, journalled in
the row's transaction -> broker. The paper broker is the backtest's core stepped one row at a
time, so a replay through it equals the backtest.

On start the executor rebuilds itself from the journal: features from history and the
journalled bars, the paper account by replaying the journalled rows, and every unfinished
intent is settled with the broker: an order the broker has is followed, never resent; one it
never received is sent; one only intended is sent.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mlalgo.bundle import Bundle
from mlalgo.data.bar import Bar
from mlalgo.live.account import AccountView
from mlalgo.live.broker import Broker, BrokerError
from mlalgo.live.config import LiveConfig
from mlalgo.live.events import emit, write_status
from mlalgo.live.guards import Guards
from mlalgo.live.journal import Decision, Intent, Journal, Leg
from mlalgo.live.orders import OrderDesk
from mlalgo.live.reload import Reloader, bundle_tag
from mlalgo.live.risk import (
    HALT_DAY_FLAG,
    KILL_FLAG,
    OrderRate,
    TradingHours,
    cap_units,
    desired_units,
    guards_limits,
)
from mlalgo.live.rows import Rows
from mlalgo.live.signal import LiveSignal
from mlalgo.live.stats import Stats

FLATTEN_LEG = 8  # flatten orders of a row start here, clear of the decision's own legs


class Executor:
    """One strategy, one account. ``run()`` until the feed ends or :meth:`stop` is called."""

    def __init__(
        self,
        cfg: LiveConfig,
        bundle: Bundle,
        feed: Any,
        broker: Broker,
        journal: Journal,
        *,
        strategy: str,
        symbols: list[str],
        wall: Callable[[], float] = time.time,
        reload: Callable[[], Bundle | None] | None = None,
    ) -> None:
        self.cfg, self.bundle, self.feed, self.broker = cfg, bundle, feed, broker
        self.journal, self.strategy, self.symbols = journal, strategy, list(symbols)
        self._wall = wall
        self.interval_ms = int(feed.interval_ms)
        self.signal = LiveSignal(bundle)
        self.stats = Stats()
        self.rows = Rows(self.symbols, self.interval_ms, feed, journal, self.stats,
                         row_wait=cfg.row_wait)  # fmt: skip
        self.rate = OrderRate(cfg.guards.max_orders_per_minute)
        self.orders = OrderDesk(
            journal, broker, rate=self.rate, unknown_wait=cfg.unknown_wait, stats=self.stats
        )
        self.account = AccountView(broker, self.stats)
        self.reloader = Reloader(reload, cfg.reload_every) if reload is not None else None
        self.hours = TradingHours(cfg.guards.hours) if cfg.guards.hours is not None else None
        risk = bundle.execution.risk
        max_drawdown, max_daily_loss = guards_limits(
            cfg.guards, risk.max_drawdown, risk.max_daily_loss
        )
        self.guards = Guards(journal, max_drawdown=max_drawdown, max_daily_loss=max_daily_loss)
        self._last_target: dict[str, float] = {}
        self._last_close: dict[str, float] = {}
        self._last_row = -1
        self._last_bar_wall = time.monotonic()
        self._stale = False
        self._stopping = False
        self._next_heartbeat = 0.0
        self._history: dict[str, deque[Bar]] = {
            s: deque(maxlen=max(cfg.warmup_bars, 1)) for s in self.symbols
        }
        self._paper = bool(getattr(broker, "sizes_at_fill", False))
        self._flattened: dict[str, float] | None = None  # the positions the last flatten sold

    # -- start ----------------------------------------------------------------------------

    def start(self, first_ms: int | None = None) -> None:
        """Warm up and settle with the broker. ``first_ms``: the first bar time to trade
        (bars before it warm the features), on a first start."""
        t0 = time.perf_counter()
        self.guards.read()
        rows = list(self.journal.rows())
        begin = rows[0][0] if rows else first_ms
        if begin is None:  # a first start on a live feed: warm up on what has closed by now
            begin = int(self._wall() * 1000)
        for symbol in self.symbols:
            if self.cfg.warmup_bars == 0:
                break
            history = self.feed.history(symbol, begin, self.cfg.warmup_bars)
            self.signal.warm_up(history)
            self._history[symbol].extend(history)
            if history and not rows:  # the feed may hand the newest of them over again
                self.rows.edge.accept(history[-1])
                self._last_row = max(self._last_row, history[-1].open_ms)
        for intent in self.journal.open_intents():
            if intent.target is not None:
                self._last_target[intent.symbol] = intent.target
        for open_ms, bars in rows:  # the journalled session, replayed into the same state
            for bar in bars:
                self.signal.update(bar)
                self._history[bar.symbol].append(bar)
                self._last_close[bar.symbol] = bar.close
                self.rows.edge.accept(bar)
            for intent in self.journal.intents_at(open_ms):
                if intent.target is not None:
                    self._last_target[intent.symbol] = intent.target
            if self._paper:
                self._replay_paper_row(open_ms, bars)
            self._last_row = open_ms
        self.reconcile()
        emit(
            "started",
            strategy=self.strategy,
            model=bundle_tag(self.bundle),
            symbols=self.symbols,
            resumed_rows=len(rows),
            killed=self.guards.killed,
            seconds=round(time.perf_counter() - t0, 4),
        )

    def _replay_paper_row(self, open_ms: int, bars: list[Bar]) -> None:
        """Step the paper account through a journalled row with the decisions taken on it."""
        targets = self.journal.decisions_at(open_ms)
        self._paper_step(open_ms, {b.symbol: b for b in bars}, targets)

    def _paper_step(self, open_ms: int, row: dict[str, Bar], targets: dict[str, float]) -> None:
        fills = self.broker.on_row(open_ms, row, targets)  # type: ignore[attr-defined]
        for fill in fills:
            if self.journal.record_exit(
                fill.fill_id,
                fill.symbol,
                fill.quantity,
                fill.price,
                fill.commission,
                fill.time_ms,
                fill.client_order_id,
            ):
                self.stats.fills += 1
                emit(
                    "fill",
                    symbol=fill.symbol,
                    quantity=fill.quantity,
                    price=fill.price,
                    commission=fill.commission,
                    reason=fill.client_order_id,
                )

    def reconcile(self) -> None:
        """Settle every unfinished intent with the broker, then compare positions."""
        self.poll_orders()
        self.flush()
        self.check_positions()

    def check_positions(self) -> dict[str, tuple[float, float]]:
        """Journal against broker; a difference is logged (the broker's book is the truth)."""
        mine = self.journal.positions()
        try:
            account = self.broker.account()
        except BrokerError as exc:
            emit("broker_unreachable", logging.WARNING, call="account", message=str(exc))
            return {}
        if not self._paper:
            self.account.seen(account)
        theirs = account.positions
        diff = {}
        for symbol in set(mine) | set(theirs):
            a, b = mine.get(symbol, 0.0), theirs.get(symbol, 0.0)
            if abs(a - b) > 1e-9 * max(1.0, abs(a), abs(b)):
                diff[symbol] = (a, b)
        if diff:
            emit("position_mismatch", logging.WARNING, journal_vs_broker=diff)
        return diff

    # -- the loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True

    def run(self, *, poll_timeout: float = 0.5) -> None:
        while not self._stopping:
            bars = self.feed.poll(poll_timeout)
            for bar in bars:
                self.offer(bar)
            self.process_ready(final=bool(getattr(self.feed, "exhausted", False)))
            self.flush()
            self.poll_orders()
            self.keep_flat()
            self._sync_account()
            self.check_kill()
            self.check_stale()
            self.maybe_reload()
            self.heartbeat()
            if getattr(self.feed, "exhausted", False) and not bars and not self.rows.pending:
                break
        # Rows still pending at a stop are left undecided, not forced through: none of their
        # bars is journalled yet, so a restart fetches them again and decides them then.
        self.flush()
        self.poll_orders()
        self.heartbeat(force=True)
        emit("stopped", strategy=self.strategy, rows=self.stats.rows)

    def offer(self, bar: Bar) -> None:
        """A bar from the feed, judged at the edge and queued into its row."""
        if not self.rows.offer(bar, self._last_row):
            return
        self._last_bar_wall = time.monotonic()
        if self._stale:
            self._stale = False
            emit("data_resumed", symbol=bar.symbol, open_ms=bar.open_ms)

    def process_ready(self, *, final: bool = False) -> None:
        """Decide the rows that are ready, oldest first (see :class:`Rows`)."""
        for open_ms, row in self.rows.ready(final=final, stop=lambda: self._stopping):
            self.process_row(open_ms, row)

    # -- one row ------------------------------------------------------------------------------

    def process_row(self, open_ms: int, row: dict[str, Bar]) -> list[Intent]:
        t0 = time.perf_counter_ns()
        decisions, legs = self.decide_row(open_ms, row)
        self.stats.latency_ns.append(time.perf_counter_ns() - t0)
        intents = self.journal.record_row(
            decisions,
            strategy=self.strategy,
            bundle=bundle_tag(self.bundle),
            orders=legs,
            row_ms=open_ms,
        )
        self._last_row = open_ms
        first = self.stats.rows == 0
        if first:  # how soon a (re)started process decides: see bench_live
            emit("first_decision", open_ms=open_ms, intents=len(intents))
        self.stats.rows += 1
        self.stats.bars += len(row)
        for bar in row.values():
            self._history[bar.symbol].append(bar)
        if self._paper:
            targets = {d.bar.symbol: d.target for d in decisions if d.target is not None}
            self._paper_step(open_ms, row, targets)
            if self.broker.killed and self.guards.killed is None:  # type: ignore[attr-defined]
                self._trip("max_drawdown", open_ms)
        else:
            self.flush()
            self.poll_orders()
            self.keep_flat()
            self._sync_account()
            self._account_limits(open_ms)
        if first:  # the first row is out: the faster per-bar evaluator may load beside the loop
            self.bundle.row_model.load_compiled()
        return intents

    def decide_row(self, open_ms: int, row: dict[str, Bar]) -> tuple[list[Decision], list[Leg]]:
        """Features, model, decide and the risk gate for one row: the latency that matters."""
        decisions = []
        legs = []
        killed = self.guards.killed is not None
        halted = self.guards.halted_on(open_ms)
        equity = None
        for symbol in self.symbols:
            bar = row.get(symbol)
            if bar is None:
                continue
            sig = self.signal.update(bar)
            self._last_close[symbol] = bar.close
            target = sig.weight
            if killed or halted:
                target = 0.0  # every decision is "flat" until a person resets the switch
            elif target < 0.0 and not self.broker.shorting:
                target = 0.0
            decisions.append(Decision(bar, sig.p_up, target))
            if self._paper or math.isnan(target):
                continue  # the paper broker takes the decisions themselves
            if target == self._last_target.get(symbol, 0.0):
                continue
            if equity is None:
                equity = self._equity(fresh=False)
            leg = self._leg(symbol, target, bar.close, equity)
            self._last_target[symbol] = target
            if leg is not None:
                legs.append(leg)
        return decisions, legs

    def _leg(self, symbol: str, target: float, price: float, equity: float) -> Leg | None:
        ex = self.bundle.execution
        current = self.journal.expected_positions().get(symbol, 0.0)
        units = desired_units(
            target,
            equity,
            price,
            sizing=ex.sizing,
            unit_size=ex.unit_size,
            commission_rate=ex.costs.commission_bps / 1e4,
            current=current,
        )
        units, capped = cap_units(
            units,
            price,
            equity,
            max_position=ex.risk.max_position,
            max_units=self.cfg.guards.max_units,
            max_notional=self.cfg.guards.max_notional,
            whole=ex.sizing == "whole",
        )
        if capped:
            emit("position_capped", symbol=symbol, cap=capped, units=units)
        qty = units - current
        if qty == 0.0:
            return None
        return Leg(symbol, "buy" if qty >= 0 else "sell", abs(qty), target)

    # -- orders -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what is intended, if the guards allow it now; the rest waits in the journal."""
        if self._stale and self.cfg.guards.on_stale == "halt":
            return
        if self.hours is not None and not self.hours.open_at(self._wall()):
            return
        self.orders.flush()

    def poll_orders(self) -> None:
        """Follow working orders and those whose answer was lost (see :class:`OrderDesk`)."""
        self.orders.poll(self._must_be_flat)

    # -- guards -------------------------------------------------------------------------------

    def _positions(self) -> dict[str, float]:
        return self.journal.positions()

    def _equity(self, *, fresh: bool = True) -> float:
        return self.account.equity(self._last_close, fresh=fresh)

    def _sync_account(self) -> None:
        if not self._paper:
            self.account.sync()

    def _account_limits(self, open_ms: int) -> None:
        if self.guards.max_drawdown is None and self.guards.max_daily_loss is None:
            return
        equity = self._equity(fresh=False)  # asked again above if this row filled
        which = self.guards.judge(equity, open_ms)
        if which:
            self._trip(which, open_ms, equity=equity)

    def _trip(self, which: str, open_ms: int, **fields: Any) -> None:
        self.guards.trip(which, open_ms)
        emit("account_limit", logging.ERROR, limit=which, open_ms=open_ms, **fields)
        if not self._paper:
            self._void_waiting(which)
            self.flatten(open_ms, which)

    def _void_waiting(self, reason: str) -> None:
        for intent in self.orders.void_waiting(reason):
            self._last_target[intent.symbol] = 0.0

    def flatten(self, open_ms: int, reason: str) -> list[Intent]:
        """Orders that take every position to zero (a broker that sizes at the fill gets a
        zero target)."""
        legs = []
        first = max(FLATTEN_LEG, self.journal.next_leg(open_ms))  # a second flatten on a bar
        held = self._positions()
        for symbol, units in held.items():
            if units != 0.0 or self._paper:
                side = "sell" if units > 0 else "buy"
                legs.append(Leg(symbol, side, abs(units), 0.0, leg=first))
                self._last_target[symbol] = 0.0
        self._flattened = {s: u for s, u in held.items() if u != 0.0}
        emit("flatten", logging.WARNING, reason=reason, orders=len(legs))
        intents = self.journal.record_row(
            [], strategy=self.strategy, bundle=bundle_tag(self.bundle), orders=legs, row_ms=open_ms
        )
        self.flush()
        return intents

    def _must_be_flat(self) -> str | None:
        stale_flatten = self._stale and self.cfg.guards.on_stale == "flatten"
        return self.guards.holding_flat(self._last_row, stale_flatten=stale_flatten)

    def keep_flat(self) -> None:
        """A flatten sells what had filled when it was decided; an order still out then (its
        answer lost, or working at the broker) may fill after it. While a guard holds the
        account flat, whatever it holds once no order is out is flattened again: once per
        change of the positions, so a flatten the broker refuses is not repeated every turn."""
        if self._paper:
            return
        reason = self._must_be_flat()
        if reason is None:
            self._flattened = None
            return
        if self.journal.open_intents():
            return
        held = {s: u for s, u in self._positions().items() if u != 0.0}
        if held and held != self._flattened:
            emit("flatten_again", logging.WARNING, reason=reason, positions=held)
            self.flatten(max(self._last_row, 0), reason)

    def check_kill(self) -> None:
        """``mlalgo live kill`` and ``resume`` write the journal's flags from another process;
        the loop reads them here, once per turn, and acts on a new kill once."""
        flag = self.guards.new_kill()
        if flag is None:
            return
        emit("kill_switch", logging.ERROR, reason=flag)
        if self._paper:
            return
        self._void_waiting("kill switch")
        if any(u != 0.0 for u in self._positions().values()):
            self.flatten(max(self._last_row, 0), "kill switch")

    def check_stale(self) -> None:
        limit = self.cfg.guards.stale_after * self.interval_ms / 1000.0
        if self._stale or time.monotonic() - self._last_bar_wall < limit:
            return
        if getattr(self.feed, "exhausted", False):
            return
        self._stale = True
        emit("stale_data", logging.ERROR, seconds=limit, action=self.cfg.guards.on_stale)
        if self.cfg.guards.on_stale == "flatten" and not self._paper:
            self.flatten(max(self._last_row, 0), "stale data")

    # -- hot reload -----------------------------------------------------------------------

    def maybe_reload(self) -> None:
        """Between rows: swap to the bundle a registry check has brought (see
        :mod:`mlalgo.live.reload`); only the loop's thread swaps."""
        if self.reloader is None:
            return
        bundle = self.reloader.poll(self.bundle)
        if bundle is not None:
            self.swap(bundle)

    def swap(self, bundle: Bundle) -> None:
        """Between rows: the new model takes over; features carry on when the spec is the
        same, else they are rebuilt from the bars held in memory. Positions are untouched."""
        old = bundle_tag(self.bundle)
        if bundle.spec == self.bundle.spec:
            self.signal.bundle = bundle
        else:
            signal = LiveSignal(bundle)
            for symbol in self.symbols:
                signal.warm_up(self._history[symbol])
            self.signal = signal
        self.bundle = bundle
        bundle.row_model.load_compiled()
        self.stats.reloads += 1
        emit("model_swapped", old=old, new=bundle_tag(bundle))

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "model": bundle_tag(self.bundle),
            "symbols": self.symbols,
            "last_row_ms": self._last_row,
            "positions": self.journal.positions(),
            "open_intents": len(self.journal.open_intents()),
            "kill_switch": self.journal.flag(KILL_FLAG),
            "halted_day": self.journal.flag(HALT_DAY_FLAG),
            "stale": self._stale,
            "stats": self.stats.counts(),
            "decide_us_p50": self.stats.latency_us(0.5),
            "decide_us_p99": self.stats.latency_us(0.99),
        }

    def heartbeat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.cfg.heartbeat_every
        if not self._paper and self.account.last is not None:
            self.account.ask()  # deposits, withdrawals and trades made by hand show up here
        status = self.status()
        write_status(self.cfg.status_path(self.strategy), status)
        emit("heartbeat", **{k: status[k] for k in ("last_row_ms", "positions", "open_intents")})
