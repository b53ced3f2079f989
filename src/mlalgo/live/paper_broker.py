"""The paper broker: the backtest's account, one row at a time.

It takes decisions, not orders. The backtest's input is each bar's target exposure, and the
core decides from the whole stream what trades and when: a target equal to the one behind
the position does nothing, a decision of a day halted by the daily-loss limit is void, a
flatten resets what counts as a change. Fed the same stream one row at a time,
:class:`~mlalgo.live.paper.PaperAccount` (the same numba core) fills at the next bar's open
(or this close), sized, slipped and charged exactly as the backtest does, with its stops and
account limits. Each row's decisions are in the journal, so a restart rebuilds the account
by feeding them again; fill ids are the fill's position in that stream, so re-recording
them changes nothing.

The account is built on first use, not with the broker: it is numba code, and numba's start
takes about a second. A fresh session asks it nothing before its first row is decided and
journalled (its cash is the starting cash, it holds nothing), so the first decision does not
wait for numba; the first fill does.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from mlalgo.config import ExecutionConfig
from mlalgo.data.bar import Bar
from mlalgo.live.broker import Account, Fill, Order, OrderRejected, OrderState

if TYPE_CHECKING:
    from mlalgo.live.paper import PaperAccount


class PaperBroker:
    name = "paper"
    shorting = True
    sizes_at_fill = True  # the executor hands it decisions, see the module docstring

    def __init__(
        self,
        execution: ExecutionConfig,
        symbols: list[str],
        *,
        cash: float = 100_000.0,
        periods_per_year: float = 252.0,
    ) -> None:
        self.symbols = list(symbols)
        self._col = {s: i for i, s in enumerate(self.symbols)}
        self._execution, self._cash, self._ppy = execution, cash, periods_per_year
        self._cost_model = execution.costs.cost_model()  # settings are checked here, now

    @cached_property
    def sim(self) -> PaperAccount:
        """The backtest's account (built, and numba started, on first use)."""
        from mlalgo.live.paper import PaperAccount

        ex = self._execution
        return PaperAccount.from_cost_model(
            self.symbols,
            self._cost_model,
            periods_per_year=self._ppy,
            cash=self._cash,
            fill=ex.fill,
            sizing=ex.sizing,
            unit_size=ex.unit_size,
            min_trade=ex.min_trade,
            **ex.risk.model_dump(),
        )

    def on_row(self, open_ms: int, bars: dict[str, Bar], targets: dict[str, float]) -> list[Fill]:
        """Step one row: its bars and the decisions taken at its close (absent or NaN: none).
        Returns the row's fills; ``client_order_id`` holds the fill's reason (``signal``,
        ``stop_loss``, ..., see ``mlalgo.backtest.core.EXIT_REASONS``)."""
        m = len(self.symbols)
        o, h, lo, c, tgt = (np.full(m, np.nan) for _ in range(5))
        for symbol, bar in bars.items():
            i = self._col[symbol]
            o[i], h[i], lo[i], c[i] = bar.open, bar.high, bar.low, bar.close
        for symbol, target in targets.items():
            tgt[self._col[symbol]] = target
        from mlalgo.live.paper import utc_day

        first = self.sim.n_fills
        fills = self.sim.step(open_ms, utc_day(open_ms), o, h, lo, c, tgt)
        return [
            Fill(f"paper-{first + n}", f.reason, f.symbol, f.units, f.price, f.commission, open_ms)
            for n, f in enumerate(fills)
        ]

    # -- the broker interface: queries answer, orders are refused ----------------------------

    def submit(self, order: Order) -> OrderState:
        raise OrderRejected(order.client_order_id, "the paper broker trades decisions, not orders")

    def order(self, client_order_id: str, symbol: str) -> OrderState | None:
        return None

    def open_orders(self) -> list[OrderState]:
        return []

    def cancel(self, client_order_id: str, symbol: str) -> None:
        """Nothing is ever working: a decision is in the core as soon as its row is stepped."""

    def account(self) -> Account:
        if "sim" not in self.__dict__:  # not stepped yet: the starting cash, no positions
            return Account(float(self._cash), {})
        units = dict(zip(self.symbols, self.sim.units.tolist(), strict=True))
        return Account(self.sim.cash, {s: u for s, u in units.items() if u != 0.0})

    @property
    def killed(self) -> bool:
        return "sim" in self.__dict__ and bool(self.sim.killed)

    @property
    def equity(self) -> float:
        return float(self.sim.equity) if "sim" in self.__dict__ else float(self._cash)
