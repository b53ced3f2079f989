"""What a running executor counts: written into its status file and ``mlalgo live status``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Stats:
    bars: int = 0
    rows: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    backfilled: int = 0
    orders_sent: int = 0
    orders_unknown: int = 0
    orders_rejected: int = 0
    fills: int = 0
    reloads: int = 0
    latency_ns: deque[int] = field(default_factory=lambda: deque(maxlen=10_000))

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if k != "latency_ns"}

    def latency_us(self, q: float) -> float | None:
        """The ``q`` quantile of the recent decision latencies, in microseconds."""
        lat = sorted(self.latency_ns)
        return lat[min(len(lat) - 1, int(len(lat) * q))] / 1e3 if lat else None
