"""Provider payloads to :class:`Bar`, strictly: anything unexpected raises :class:`Malformed`.

Kept apart from the transports so the same parsing serves the WebSocket, REST backfill and
polling, and so a junk frame is one well-defined exception the feeds count instead of crash on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from mlalgo.data.bar import Bar

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class Malformed(ValueError):
    """A message that cannot be read as a closed bar."""


def to_ms(text: str) -> int:
    """ISO/RFC-3339 time (or a plain date) to epoch ms UTC; a naive time is taken as UTC.

    Matches ``pd.to_datetime(..., utc=True)`` on the same strings, which is how the bar loaders
    read files.

    >>> to_ms("2000-03-01"), to_ms("2022-04-11T08:00:00Z")
    (951868800000, 1649664000000)
    """
    try:
        dt = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError) as exc:
        raise Malformed(f"time {text!r} is not ISO-8601 ({exc})") from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return (dt - EPOCH) // _MS


def to_rfc3339(ms: int) -> str:
    """Epoch ms to ``2022-04-11T08:00:00.000Z``."""
    return (EPOCH + ms * _MS).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{name} is {value!r}, not an integer")
    return value


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Malformed(f"{name} is {value!r}, not a number")
    try:
        x = float(value)
    except ValueError:
        raise Malformed(f"{name} is {value!r}, not a number") from None
    if not math.isfinite(x):
        raise Malformed(f"{name} is {value!r}, not a finite number")
    return x


def kline_event_bar(k: Any, interval: str | None = None) -> Bar | None:
    """The ``k`` object of a kline stream event; None while the kline is still open (``x``)."""
    if not isinstance(k, dict):
        raise Malformed(f"kline payload is {type(k).__name__}, not an object")
    try:
        closed, symbol = k["x"], k["s"]
        fields = [k[c] for c in "ohlcv"]
        t = _int(k["t"], "k.t")
    except KeyError as exc:
        raise Malformed(f"kline payload lacks {exc}") from None
    if not isinstance(closed, bool):
        raise Malformed(f"k.x is {closed!r}, not a boolean")
    if not isinstance(symbol, str) or not symbol:
        raise Malformed(f"k.s is {symbol!r}, not a symbol")
    if interval is not None and k.get("i", interval) != interval:
        raise Malformed(f"k.i is {k.get('i')!r}, expected {interval!r}")
    o, h, lo, c, v = (_float(x, f"k.{n}") for x, n in zip(fields, "ohlcv", strict=True))
    return Bar(symbol.upper(), t, o, h, lo, c, v) if closed else None


def kline_row_bar(symbol: str, row: Any) -> tuple[Bar, int]:
    """One ``/api/v3/klines`` row as (bar, close time in ms)."""
    if not isinstance(row, list) or len(row) < 7:
        raise Malformed(f"kline row {str(row)[:80]!r} is not a 12-element array")
    o, h, lo, c, v = (_float(x, "kline price") for x in row[1:6])
    bar = Bar(symbol, _int(row[0], "open time"), o, h, lo, c, v)
    return bar, _int(row[6], "close time")


def alpaca_bar(symbol: str, item: Any) -> Bar:
    """One Alpaca v2 bar object (``{"t": RFC-3339, "o": ..., ...}``, numbers)."""
    if not isinstance(item, dict):
        raise Malformed(f"Alpaca bar {str(item)[:80]!r} is not an object")
    try:
        t, fields = item["t"], [item[c] for c in "ohlcv"]
    except KeyError as exc:
        raise Malformed(f"Alpaca bar lacks {exc}") from None
    if not isinstance(t, str):
        raise Malformed(f"Alpaca bar time {t!r} is not a string")
    o, h, lo, c, v = (_float(x, n) for x, n in zip(fields, "ohlcv", strict=True))
    return Bar(symbol, to_ms(t), o, h, lo, c, v)
