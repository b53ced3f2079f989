"""The online feature engine: a FeatureSpec over one symbol's bar stream, one bar at a time.

It is the live twin of :func:`mlalgo.features.batch.compute`: the same spec, the same values to
1e-9 at every bar (tests/features/test_online.py proves it on the real sample), O(1) per bar and
no pandas, so the live executor can import it.

A feature reads the bar columns its ``columns`` names (its ``input`` for most; high, low and
close for ATR). A spec that reads one column (the usual case) feeds that float to every twin; a
spec that reads several gives each twin its own column, or the tuple of its columns when it
reads more than one, picked from one ``attrgetter`` call per bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from mlalgo.data.bar import Bar
from mlalgo.features.online._base import Stream
from mlalgo.features.online.ar1 import AR1ZScoreStream
from mlalgo.features.online.atr import ATRStream
from mlalgo.features.online.averages import DistEMAStream, DistSMAStream
from mlalgo.features.online.crossover import MACrossStream, MASpreadStream
from mlalgo.features.online.dispersion import BollingerBStream, VolatilityStream, ZScoreStream
from mlalgo.features.online.momentum import LogReturnStream, RSIStream, SimpleReturnStream
from mlalgo.features.spec import (
    ATR,
    RSI,
    AR1ZScore,
    BollingerB,
    DistEMA,
    DistSMA,
    FeatureSpec,
    LogReturn,
    MACross,
    MASpread,
    SimpleReturn,
    Volatility,
    ZScore,
    _Feature,
)

SNAPSHOT_FORMAT = "mlalgo.online/1"

TWINS: dict[type[_Feature], Callable[[Any], Stream]] = {
    RSI: lambda f: RSIStream(f.n),
    DistSMA: lambda f: DistSMAStream(f.n),
    DistEMA: lambda f: DistEMAStream(f.n),
    Volatility: lambda f: VolatilityStream(f.n),
    LogReturn: lambda f: LogReturnStream(f.k),
    AR1ZScore: lambda f: AR1ZScoreStream(f.window, f.log),
    ZScore: lambda f: ZScoreStream(f.n),
    SimpleReturn: lambda f: SimpleReturnStream(f.k),
    MASpread: lambda f: MASpreadStream(f.fast, f.slow, f.kind),
    MACross: lambda f: MACrossStream(f.fast, f.slow, f.kind),
    BollingerB: lambda f: BollingerBStream(f.n, f.k),
    ATR: lambda f: ATRStream(f.n, f.normalize),
}

_COLUMNS = ("open", "high", "low", "close", "volume")
_INF = math.inf


def twin_for(feature: _Feature) -> Stream:
    """A fresh streaming twin of one spec feature (the online counterpart of batch.KERNELS)."""
    return TWINS[type(feature)](feature)


def _positive_columns(feature: _Feature) -> tuple[str, ...]:
    """The columns a feature needs above 0: those it takes logs of, or divides by."""
    if isinstance(feature, Volatility | LogReturn) or (
        isinstance(feature, AR1ZScore) and feature.log
    ):
        return feature.columns
    if isinstance(feature, ATR) and feature.normalize:
        return ("close",)
    return ()


class OnlineFeatures:
    """Streaming features of ONE symbol: ``update(bar)`` returns the spec's feature vector.

    Keep one instance per symbol (or use :class:`OnlineFeatureSet`): the indicators carry that
    symbol's history, so mixing streams would silently blend instruments; a bar of another
    symbol is refused. So is a bar that is not newer than the last one, and a bar whose inputs
    are not finite (or not positive where a feature takes logs or divides by them), before any
    state changes, so a refused bar leaves the engine exactly as it was.

    Examples
    --------
    >>> from mlalgo.features.spec import FeatureSpec, LogReturn
    >>> engine = OnlineFeatures(FeatureSpec(features=(LogReturn(k=1),)))
    >>> engine.update(Bar("X", 0, 1.0, 1.0, 1.0, 100.0, 0.0))
    array([nan])
    >>> engine.update(Bar("X", 60_000, 1.0, 1.0, 1.0, 110.0, 0.0)).round(6), engine.ready
    (array([0.09531]), True)
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.spec_hash = spec.hash
        self._twins = [twin_for(f) for f in spec.features]
        columns = [c for c in _COLUMNS if any(c in f.columns for f in spec.features)]
        # Whether each column read must be > 0 (it feeds a log or a division) or only finite.
        positive = {c for f in spec.features for c in _positive_columns(f)}
        self._positive = tuple(c in positive for c in columns)
        self._columns = tuple(columns)
        self._read = attrgetter(*columns) if columns else None
        # One column read (the usual case) skips the per-feature column lookup. Otherwise each
        # twin gets its column's value, or the tuple of its columns' values (itemgetter of
        # several indices), from the tuple the one attrgetter call returned.
        self._steps: list[Callable[[Any], float]] | None = None
        self._plan: list[tuple[Callable[[tuple[float, ...]], Any], Callable[[Any], float]]] = []
        if len(columns) == 1:
            self._steps = [t.update for t in self._twins]
        else:
            self._plan = [
                (itemgetter(*(columns.index(c) for c in f.columns)), t.update)
                for f, t in zip(spec.features, self._twins, strict=True)
            ]
        self._out = np.full(len(self._twins), np.nan)
        self._view = memoryview(self._out)
        self._symbol: str | None = None
        self._last_ms: int | None = None
        self._bars = 0

    @property
    def names(self) -> list[str]:
        return self.spec.names

    @property
    def ready(self) -> bool:
        """Every feature is past its warm-up (a degenerate window can still be NaN, as in batch)."""
        return all(t.initialized for t in self._twins)

    @property
    def symbol(self) -> str | None:
        return self._symbol

    @property
    def last_open_ms(self) -> int | None:
        return self._last_ms

    @property
    def bars_seen(self) -> int:
        return self._bars

    def update(self, bar: Bar) -> np.ndarray:
        """The feature vector at ``bar`` (float64, ``spec.names`` order, NaN where not warm)."""
        values = self._accept(bar)
        out = self._view  # writing floats through a memoryview, then one copy, beats np.array
        steps = self._steps
        if steps is not None:
            for k, step in enumerate(steps):
                out[k] = step(values)
        else:
            for k, (pick, step) in enumerate(self._plan):
                out[k] = step(pick(values))
        return self._out.copy()

    def warm_up(self, bars: Iterable[Bar]) -> None:
        """Feed history (oldest first) before going live; equal to updating bar by bar."""
        for bar in bars:
            values = self._accept(bar)
            if self._steps is not None:
                for step in self._steps:
                    step(values)
            else:
                for pick, step in self._plan:
                    step(pick(values))

    def _accept(self, bar: Bar) -> Any:
        """Check ``bar`` and return its input value(s), before any state changes."""
        t = bar.open_ms
        last = self._last_ms
        if last is not None and t <= last:
            what = "repeats" if t == last else "is older than"
            raise ValueError(
                f"{bar.symbol}: bar at open_ms={t} {what} the last accepted bar at "
                f"open_ms={last}; the online engine takes each bar once, in time order "
                "(deduplicate and sort the feed, or restore a snapshot taken before this bar)"
            )
        if bar.symbol != self._symbol and self._symbol is not None:
            raise ValueError(
                f"bar of {bar.symbol} sent to the online features of {self._symbol}; keep one "
                "OnlineFeatures per symbol (OnlineFeatureSet routes bars by symbol)"
            )
        values = self._read(bar) if self._read is not None else ()
        if self._steps is not None:
            if not (0.0 < values < _INF if self._positive[0] else -_INF < values < _INF):
                self._refuse(bar, 0, values)
        else:
            for j, positive in enumerate(self._positive):
                v = values[j]
                if not (0.0 < v < _INF if positive else -_INF < v < _INF):
                    self._refuse(bar, j, v)
        self._symbol = bar.symbol
        self._last_ms = t
        self._bars += 1
        return values

    def _refuse(self, bar: Bar, j: int, value: float) -> None:
        need = "positive and finite" if self._positive[j] else "finite"
        raise ValueError(
            f"{bar.symbol}: bar at open_ms={bar.open_ms} has {self._columns[j]}={value}, which "
            f"must be {need} for these features; validate bars at the edge (mlalgo.bars)"
        )

    def snapshot(self) -> dict[str, Any]:
        """The whole engine state as JSON-able data, tied to the spec by its hash."""
        return {
            "format": SNAPSHOT_FORMAT,
            "spec_hash": self.spec_hash,
            "features": self.spec.names,
            "symbol": self._symbol,
            "last_open_ms": self._last_ms,
            "bars": self._bars,
            "twins": [t.state() for t in self._twins],
        }

    @classmethod
    def restore(cls, spec: FeatureSpec, snapshot: dict[str, Any]) -> OnlineFeatures:
        """An engine continuing exactly where ``snapshot`` left off; refuses another spec's."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"not an online-features snapshot: format {snapshot.get('format')!r}, "
                f"expected {SNAPSHOT_FORMAT!r}"
            )
        engine = cls(spec)
        if snapshot.get("spec_hash") != engine.spec_hash:
            raise ValueError(
                f"snapshot was taken with feature spec {snapshot.get('spec_hash')} but this "
                f"engine runs spec {engine.spec_hash}; warm up from history instead of restoring"
            )
        for twin, state in zip(engine._twins, snapshot["twins"], strict=True):
            twin.restore(state)
        engine._symbol = snapshot["symbol"]
        engine._last_ms = snapshot["last_open_ms"]
        engine._bars = snapshot["bars"]
        return engine


class OnlineFeatureSet:
    """One :class:`OnlineFeatures` per symbol, created on a symbol's first bar."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.engines: dict[str, OnlineFeatures] = {}

    def __getitem__(self, symbol: str) -> OnlineFeatures:
        return self.engines[symbol]

    def _engine(self, symbol: str) -> OnlineFeatures:
        engine = self.engines.get(symbol)
        if engine is None:
            engine = self.engines[symbol] = OnlineFeatures(self.spec)
        return engine

    def update(self, bar: Bar) -> np.ndarray:
        return self._engine(bar.symbol).update(bar)

    def warm_up(self, bars: Iterable[Bar]) -> None:
        for bar in bars:
            self._engine(bar.symbol).warm_up((bar,))

    def snapshot(self) -> dict[str, Any]:
        return {
            "spec_hash": self.spec.hash,
            "symbols": {s: e.snapshot() for s, e in self.engines.items()},
        }

    @classmethod
    def restore(cls, spec: FeatureSpec, snapshot: dict[str, Any]) -> OnlineFeatureSet:
        if snapshot.get("spec_hash") != spec.hash:
            raise ValueError(
                f"snapshot was taken with feature spec {snapshot.get('spec_hash')} but this "
                f"set runs spec {spec.hash}; warm up from history instead of restoring"
            )
        out = cls(spec)
        out.engines = {
            s: OnlineFeatures.restore(spec, snap) for s, snap in snapshot["symbols"].items()
        }
        return out
