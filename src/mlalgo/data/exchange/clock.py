"""The replay clock, and the stored bars as that clock reveals them.

REST and WebSocket must agree on one notion of "now", or a client could see a bar over REST that
the stream has not closed yet (or the reverse). Everything that asks what is visible goes through
:class:`Book`, which owns the only :class:`ReplayClock`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlalgo.bars import COLUMNS
from mlalgo.data.intervals import INTERVAL_MS, interval_ms

WARMUP_BARS = 200  # the default speed-mode start: this many bars after the first one


class ReplayClock:
    """Replay time in epoch ms: fixed (static), or running ``speed`` times faster than wall time.

    It never runs past ``end_ms`` (the close of the last bar): the replay stops there.
    """

    def __init__(
        self,
        *,
        start_ms: int,
        end_ms: int,
        speed: float | None = None,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0 (or None for a static clock), got {speed}")
        self.speed, self.end_ms, self._wall = speed, end_ms, wall
        self.start_ms = end_ms if speed is None else min(max(start_ms, 0), end_ms)
        self._t0: float | None = None

    def start(self) -> None:
        """Start running from ``start_ms`` now (the moment the server listens)."""
        self._t0 = self._wall()

    def now_ms(self) -> int:
        if self.speed is None or self._t0 is None:
            return self.start_ms
        elapsed = (self._wall() - self._t0) * 1000.0 * self.speed
        return min(self.start_ms + int(elapsed), self.end_ms)

    @property
    def stopped(self) -> bool:
        """True once replay time can no longer advance."""
        return self.now_ms() >= self.end_ms


@dataclass(frozen=True)
class Tape:
    """One symbol's bars as arrays: open times (epoch ms) and rows of o, h, l, c, v."""

    times: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def partial(values: np.ndarray, fraction: float) -> tuple[float, float, float, float, float]:
    """A bar ``fraction`` of the way through: close moved that far from open to the stored close.

    Deterministic, so every client (and every test) sees the same in-progress values.
    """
    o, _, _, c, v = (float(x) for x in values)
    if fraction >= 1.0:
        return tuple(float(x) for x in values)  # type: ignore[return-value]
    p = o + fraction * (c - o)
    return o, max(o, p), min(o, p), p, v * fraction


def trades(volume: float) -> int:
    """A made-up but deterministic trade count for a bar."""
    return int(math.sqrt(volume)) if volume > 0 else 0


class Book:
    """The served bars, by symbol, and which of them the clock makes visible."""

    def __init__(self, bars: pd.DataFrame, interval: str, clock: ReplayClock) -> None:
        self.interval, self.step, self.clock = interval, interval_ms(interval), clock
        self.tapes: dict[str, Tape] = {}
        for symbol, frame in bars.groupby(level="symbol", sort=True):
            times = frame.index.get_level_values("time").as_unit("ms").asi8
            values = frame.loc[:, list(COLUMNS)].to_numpy(dtype=np.float64, copy=True)
            self.tapes[str(symbol)] = Tape(np.asarray(times, dtype=np.int64), values)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def visible(self, symbol: str, until_ms: int) -> int:
        """How many bars have opened by ``until_ms`` (the last may still be in progress)."""
        return int(np.searchsorted(self.tapes[symbol].times, until_ms, side="right"))

    def closed(self, symbol: str, now_ms: int) -> int:
        """How many bars have closed by ``now_ms``."""
        return int(np.searchsorted(self.tapes[symbol].times, now_ms - self.step, side="right"))

    def bar(self, symbol: str, i: int, now_ms: int) -> tuple[float, float, float, float, float]:
        """Bar ``i`` as seen at ``now_ms``: stored values if closed, partial ones if in progress."""
        tape = self.tapes[symbol]
        fraction = (now_ms - int(tape.times[i])) / self.step
        return partial(tape.values[i], fraction)


def infer_interval(bars: pd.DataFrame) -> str:
    """The interval whose length is the median spacing of each symbol's bar times."""
    gaps = [
        np.diff(frame.index.get_level_values("time").as_unit("ms").asi8)
        for _, frame in bars.groupby(level="symbol")
    ]
    spacing = np.concatenate(gaps) if gaps else np.array([], dtype=np.int64)
    if len(spacing) == 0:
        raise ValueError("cannot infer the bar interval from single bars; pass interval=")
    median = int(np.median(spacing))
    for name, ms in INTERVAL_MS.items():
        if median == ms:
            return name
    raise ValueError(
        f"bars are spaced {pd.Timedelta(median, unit='ms')} apart (median), which is not one of "
        f"{', '.join(INTERVAL_MS)}; resample them or pass interval="
    )


def make_clock(
    bars: pd.DataFrame, step: int, speed: float | None, start: pd.Timestamp | str | None
) -> ReplayClock:
    """The clock for these bars: static at the last close, or running from ``start``."""
    times = bars.index.get_level_values("time").as_unit("ms").asi8
    first, end = int(times.min()), int(times.max()) + step
    if start is None:
        start_ms = first + WARMUP_BARS * step
    else:
        ts = pd.Timestamp(start)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        start_ms = int(ts.value // 1_000_000)
    return ReplayClock(start_ms=max(start_ms, first), end_ms=end, speed=speed)
