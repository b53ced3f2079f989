"""Bar intervals: one name per interval, and how each provider spells it.

Bars are stamped with their open time in UTC. An interval of ``1d`` opens at 00:00 UTC.
"""

from __future__ import annotations

from typing import Literal

Interval = Literal["1m", "1h", "1d"]

INTERVAL_MS: dict[str, int] = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}
BINANCE: dict[str, str] = {"1m": "1m", "1h": "1h", "1d": "1d"}
ALPACA: dict[str, str] = {"1m": "1Min", "1h": "1Hour", "1d": "1Day"}
CCXT: dict[str, str] = {"1m": "1m", "1h": "1h", "1d": "1d"}


def interval_ms(interval: str) -> int:
    """Milliseconds per bar; a clear error for an interval mlalgo does not know."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"unknown interval {interval!r}; expected one of {', '.join(INTERVAL_MS)}"
        ) from None


def from_alpaca(timeframe: str) -> str:
    """``1Day`` -> ``1d``."""
    for name, spelled in ALPACA.items():
        if spelled == timeframe:
            return name
    raise ValueError(
        f"unsupported Alpaca timeframe {timeframe!r}; expected {sorted(ALPACA.values())}"
    )


# Bars per trading day, and trading days per year, by calendar: annualising a Sharpe ratio needs
# both (an NYSE hour bar is not a crypto hour bar).
BARS_PER_DAY: dict[str, dict[str, int]] = {
    "NYSE": {"1d": 1, "1h": 7, "1m": 390},
    "24/7": {"1d": 1, "1h": 24, "1m": 1440},
}
DAYS_PER_YEAR: dict[str, int] = {"NYSE": 252, "24/7": 365}


def periods_per_year(interval: str, calendar: str) -> int:
    """Bars in a year of ``calendar`` at ``interval``: 252 NYSE days, 8760 crypto hours."""
    try:
        return DAYS_PER_YEAR[calendar] * BARS_PER_DAY[calendar][interval]
    except KeyError:
        raise ValueError(
            f"no annualisation for interval {interval!r} on calendar {calendar!r}; "
            f"calendars: {', '.join(DAYS_PER_YEAR)}; intervals: {', '.join(INTERVAL_MS)}"
        ) from None
