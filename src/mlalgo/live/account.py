"""The broker's account as last reported: what orders are sized against, limits judged on.

Asking the broker on the decision path would put a round trip between a bar and its orders,
so the executor keeps the last answer. It asks again whenever fills have arrived, at every
heartbeat (deposits, withdrawals and trades made by hand show up there), and at start.
"""

from __future__ import annotations

import logging

from mlalgo.live.broker import Account, Broker, BrokerError
from mlalgo.live.events import emit
from mlalgo.live.stats import Stats


class AccountView:
    """Cash and units as the broker last reported them, marked to the latest closes."""

    def __init__(self, broker: Broker, stats: Stats) -> None:
        self.broker, self.stats = broker, stats
        self.last: Account | None = None
        self._fills = -1  # ``stats.fills`` when ``last`` was asked

    def seen(self, account: Account) -> None:
        """An answer asked for elsewhere (the start's position check)."""
        self.last, self._fills = account, self.stats.fills

    def ask(self) -> None:
        """Ask the broker; while it cannot answer, keep the last answer (sizing and limits go
        on with it rather than stop the loop)."""
        try:
            account = self.broker.account()
        except BrokerError as exc:
            if self.last is None:
                raise
            emit("broker_unreachable", logging.WARNING, call="account", message=str(exc))
            return
        self.seen(account)

    def sync(self) -> None:
        """Between rows: ask again if fills have arrived since the last answer."""
        if self._fills != self.stats.fills:
            self.ask()

    def equity(self, closes: dict[str, float], *, fresh: bool = True) -> float:
        """The account's value at ``closes``. ``fresh=False`` (sizing a decision) marks the
        last answer instead of asking again."""
        if fresh or self.last is None:
            self.ask()
        account = self.last
        assert account is not None
        value = account.cash
        for symbol, units in account.positions.items():
            value += units * closes.get(symbol, 0.0)
        return value
