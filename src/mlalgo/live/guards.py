"""The kill switch, the daily halt and the account limits' bookkeeping, kept in the journal.

The flags must survive restarts and be set by ``mlalgo live kill`` from another process, so
the journal holds them. A query per row was a third of a bar's decision budget, though, so
the flags are held in memory, read once per turn of the loop (:meth:`Guards.read`) and
updated here whenever this process trips one itself. What a tripped guard *does* (void,
cancel, flatten) is the executor's.
"""

from __future__ import annotations

from mlalgo.live.journal import Journal
from mlalgo.live.risk import (
    CLOSE_EQUITY_FLAG,
    DAY_START_FLAG,
    HALT_DAY_FLAG,
    KILL_ACTED_FLAG,
    KILL_FLAG,
    PEAK_FLAG,
    breach,
)

DAY_MS = 86_400_000


def day_of(open_ms: int) -> str:
    """The UTC day of a bar time, as the halt flag records it."""
    return str(open_ms // DAY_MS)


class Guards:
    """One strategy's guard flags, as last read from (or written to) its journal."""

    def __init__(
        self, journal: Journal, *, max_drawdown: float | None, max_daily_loss: float | None
    ) -> None:
        self.journal = journal
        self.max_drawdown, self.max_daily_loss = max_drawdown, max_daily_loss
        self.killed: str | None = None
        self.halted_day: str | None = None

    def read(self) -> None:
        self.killed = self.journal.flag(KILL_FLAG)
        self.halted_day = self.journal.flag(HALT_DAY_FLAG)

    def halted_on(self, open_ms: int) -> bool:
        return self.halted_day is not None and self.halted_day == day_of(open_ms)

    def new_kill(self) -> str | None:
        """A kill switch set since this process last acted on one (by ``mlalgo live kill``,
        or before a restart), marked as acted on; None when there is none."""
        self.read()
        flag = self.killed
        if flag is None or self.journal.flag(KILL_ACTED_FLAG) == flag:
            return None
        self.journal.set_flag(KILL_ACTED_FLAG, flag)
        return flag

    def judge(self, equity: float, open_ms: int) -> str | None:
        """Record the row's equity (peak, day start, last close) and name the limit it
        breaches, if any. As in the backtest, a day is judged against the equity at the last
        close before it, so on daily bars (every row a new day) the day's own move counts."""
        if self.max_drawdown is None and self.max_daily_loss is None:
            return None
        peak = max(float(self.journal.flag(PEAK_FLAG) or equity), equity)
        day = day_of(open_ms)
        start = self.journal.flag(DAY_START_FLAG)
        if start is None or start.split(":")[0] != day:
            before = self.journal.flag(CLOSE_EQUITY_FLAG)
            start = f"{day}:{before or repr(equity)}"
            self.journal.set_flag(DAY_START_FLAG, start)
        self.journal.set_flag(PEAK_FLAG, repr(peak))
        self.journal.set_flag(CLOSE_EQUITY_FLAG, repr(equity))
        return breach(
            equity,
            peak,
            float(start.split(":")[1]),
            max_drawdown=self.max_drawdown,
            max_daily_loss=self.max_daily_loss,
        )

    def trip(self, which: str, open_ms: int) -> None:
        """Set the flag of a breached limit: the daily loss halts its UTC day, anything else
        is the kill switch (already acted on: the executor flattens now)."""
        if which == "max_daily_loss":
            self.halted_day = day_of(open_ms)
            self.journal.set_flag(HALT_DAY_FLAG, self.halted_day)
            return
        self.killed = f"{which} at bar {open_ms}"
        self.journal.set_flag(KILL_FLAG, self.killed)
        self.journal.set_flag(KILL_ACTED_FLAG, self.killed)

    def holding_flat(self, last_row: int, *, stale_flatten: bool) -> str | None:
        """Why the account must hold nothing now (a guard that flattens is in force), or None."""
        if self.killed is not None:
            return "kill switch"
        if self.halted_on(max(last_row, 0)):
            return "max_daily_loss"
        if stale_flatten:
            return "stale data"
        return None
