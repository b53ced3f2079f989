"""Validation at the edge: the only bars that reach a decision are whole, new, closed and ours.

A feed delivers what the wire delivered: repeats after a reconnect, a late bar behind a newer
one, a bar still forming, prices that break the schema. Each is answered here, once, before
any state changes, so the features, the model and the orders only ever see the bars the
backtest would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mlalgo.data.bar import Bar

ACCEPT = "accept"
DUPLICATE = "duplicate"  # already processed: dropped silently (a repeat is not an error)
REJECT = "reject"  # journalled with its reason, never decided on


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str
    reason: str = ""
    gap: tuple[int, int] | None = None  # missing bar times [start, end) before this bar


class Edge:
    """Remembers the newest bar time per symbol and judges each new bar against it."""

    def __init__(
        self,
        symbols: Iterable[str],
        interval_ms: int,
        *,
        now_ms: Callable[[], int] | None = None,
        last: dict[str, int] | None = None,
    ) -> None:
        self.symbols = frozenset(symbols)
        self.interval_ms = interval_ms
        self._now_ms = now_ms
        self.last: dict[str, int] = dict(last or {})

    def check(self, bar: Bar) -> Verdict:
        if bar.symbol not in self.symbols:
            return Verdict(REJECT, f"symbol {bar.symbol!r} is not traded here")
        if bar.open_ms % 1000 or bar.open_ms <= 0:
            return Verdict(REJECT, f"bar time {bar.open_ms} is not a whole second")
        problems = bar.problems()
        if problems:
            return Verdict(REJECT, "; ".join(problems))
        if self._now_ms is not None and bar.open_ms + self.interval_ms > self._now_ms() + 1000:
            return Verdict(REJECT, "the bar has not closed yet")
        last = self.last.get(bar.symbol)
        if last is not None and bar.open_ms == last:
            return Verdict(DUPLICATE, "already processed")
        if last is not None and bar.open_ms < last:
            return Verdict(REJECT, f"out of order: older than the last bar ({last})")
        gap = None
        if last is not None and bar.open_ms - last > self.interval_ms:
            gap = (last + self.interval_ms, bar.open_ms)
        return Verdict(ACCEPT, gap=gap)

    def accept(self, bar: Bar) -> None:
        self.last[bar.symbol] = bar.open_ms
