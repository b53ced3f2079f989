"""The risk gate between a decision and an order: what the account may hold, when it may trade,
how fast, and when it must stop.

Sizing mirrors the backtest's rules for a broker that needs a quantity at the decision's close
(the paper broker sizes at the fill itself, exactly as the backtest does). The account limits
read the broker's equity at each close: a breach of ``max_drawdown`` trips the kill switch,
which flattens and stays tripped across restarts (the journal keeps it) until a person resets
it; a breach of ``max_daily_loss`` flattens and halts until the next UTC day.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from mlalgo.live.config import DAYS, GuardsConfig, HoursConfig

KILL_FLAG = "kill_switch"
KILL_ACTED_FLAG = "kill_acted"  # the kill reason the executor has already flattened for
HALT_DAY_FLAG = "halted_day"
PEAK_FLAG = "equity_peak"
DAY_START_FLAG = "day_start_equity"
CLOSE_EQUITY_FLAG = "close_equity"  # at the last row's close: the next UTC day's start


def desired_units(
    target: float,
    equity: float,
    price: float,
    *,
    sizing: str,
    unit_size: float,
    commission_rate: float,
    current: float,
) -> float:
    """Units for ``target`` at ``price``: the backtest's three sizings, commission reserved."""
    if sizing == "units":
        return target * unit_size
    if equity <= 0.0 or price <= 0.0:
        return 0.0
    units = target * equity / (price * (1.0 + commission_rate))
    if sizing == "whole":
        free = equity - abs(current) * price * commission_rate
        units = math.copysign(
            (abs(target) * max(free, 0.0)) // (price * (1.0 + commission_rate)), target
        )
    return units


def cap_units(
    units: float,
    price: float,
    equity: float,
    *,
    max_position: float | None,
    max_units: float | None,
    max_notional: float | None,
    whole: bool,
) -> tuple[float, str]:
    """``units`` within every per-symbol cap; the reason names the cap that bound."""
    reason = ""
    limits = []
    if max_position is not None and equity > 0.0:
        limits.append((max_position * equity / price, "max_position"))
    if max_units is not None:
        limits.append((max_units, "max_units"))
    if max_notional is not None:
        limits.append((max_notional / price, "max_notional"))
    for cap, name in limits:
        if abs(units) > cap:
            units, reason = math.copysign(cap, units), name
    if whole and reason:
        units = math.copysign(math.floor(abs(units)), units)
    return units, reason


class TradingHours:
    """Whether a wall-clock instant lies in the window (``end`` may be before ``start``: a
    window across midnight)."""

    def __init__(self, cfg: HoursConfig) -> None:
        self.zone = ZoneInfo(cfg.timezone)
        self.start = _minutes(cfg.start)
        self.end = _minutes(cfg.end)
        self.days = {DAYS.index(d) for d in cfg.days}

    def open_at(self, epoch_s: float) -> bool:
        local = datetime.fromtimestamp(epoch_s, tz=UTC).astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= minute < self.end
        return local.weekday() in self.days and (minute >= self.start or minute < self.end)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class OrderRate:
    """At most ``limit`` orders in any 60 seconds."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self._clock = limit, clock
        self._sent: deque[float] = deque()

    def allow(self) -> bool:
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        return len(self._sent) < self.limit

    def record(self) -> None:
        self._sent.append(self._clock())


def breach(
    equity: float,
    peak: float,
    day_start: float,
    *,
    max_drawdown: float | None,
    max_daily_loss: float | None,
) -> str:
    """Which account limit ``equity`` breaks, the same tests as the backtest's core: ``""``,
    ``"max_drawdown"`` or ``"max_daily_loss"``."""
    if max_drawdown is not None and equity <= peak * (1.0 - max_drawdown):
        return "max_drawdown"
    if max_daily_loss is not None and equity <= day_start * (1.0 - max_daily_loss):
        return "max_daily_loss"
    return ""


def guards_limits(
    guards: GuardsConfig, bundle_drawdown: float | None, bundle_daily: float | None
) -> tuple[float | None, float | None]:
    return (
        guards.max_drawdown if guards.max_drawdown is not None else bundle_drawdown,
        guards.max_daily_loss if guards.max_daily_loss is not None else bundle_daily,
    )
