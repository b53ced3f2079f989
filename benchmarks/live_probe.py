"""The executor's decision latency, timed in a process shaped like ``mlalgo live``.

python -m benchmarks.live_probe BUNDLE STATE_DIR [--passes 3]

Run by :mod:`benchmarks.bench_live`, which reads the JSON it prints. It imports only what the
live process imports (no pandas, LightGBM or scikit-learn), so garbage collections and caches
are those of the live process, not of a benchmark that holds the research stack in memory.

Per ROW (every symbol's bar of one bar time) and per BAR (a one-symbol executor), it times
``Executor.decide_row``: online features, the model, ``decide`` and the risk gate
(kill switch and daily halt, short rule; with an order broker also the sizing and caps of an
order when the target changes), then the same plus the row's journal transaction, unsynced and
durable (``synchronous=FULL``). Garbage collection stays on, and the heap is settled after
each start as ``mlalgo live`` does it (:func:`mlalgo.live.session.settle_heap`).
"""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from mlalgo.bundle import Bundle, load_bundle
from mlalgo.data.bar import Bar
from mlalgo.live.broker import Account, Order, OrderRejected, OrderState
from mlalgo.live.config import load_live_config
from mlalgo.live.executor import Executor
from mlalgo.live.feeds.replay import ReplayFeed
from mlalgo.live.journal import Journal
from mlalgo.live.paper_broker import PaperBroker
from mlalgo.live.session import settle_heap

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "stocks_daily.csv"
SYMBOLS = ["AAPL", "MSFT"]
START = date(2009, 1, 2)
SKIP = 10  # first calls of each executor, untimed: their first journal reads and allocations


class BookBroker:
    """An order broker that answers from a fixed book: the executor sizes an order through
    the risk gate (``desired_units``, ``cap_units``) whenever a target changes."""

    name = "book"
    shorting = True
    sizes_at_fill = False

    def account(self) -> Account:
        return Account(100_000.0, {})

    def submit(self, order: Order) -> OrderState:
        raise OrderRejected(order.client_order_id, "the probe sends no orders")

    def order(self, client_order_id: str, symbol: str) -> OrderState | None:
        return None

    def open_orders(self) -> list[OrderState]:
        return []

    def cancel(self, client_order_id: str, symbol: str) -> None:
        """Nothing is ever working."""


def start_ms() -> int:
    return calendar.timegm(START.timetuple()) * 1000


def executor(
    state: Path, bundle: Bundle, symbols: list[str], *, durable: bool, broker: str
) -> tuple[Executor, ReplayFeed]:
    cfg = load_live_config(
        None,
        {
            "state_dir": str(state),
            "durable": durable,
            "row_wait": 0.0,
            "reload_every": None,
            "heartbeat_every": 3600.0,
        },
    )
    feed = ReplayFeed(SAMPLE, symbols, start_ms=start_ms())
    book: Any = (
        PaperBroker(bundle.execution, symbols, cash=100_000.0)
        if broker == "paper"
        else BookBroker()
    )
    journal = Journal(cfg.journal_path("probe"), durable=durable)
    ex = Executor(cfg, bundle, feed, book, journal, strategy="probe", symbols=symbols)
    ex.start(first_ms=start_ms())
    settle_heap()  # as Session.run does after start
    return ex, feed


def rows_of(feed: ReplayFeed) -> list[dict[str, Bar]]:
    out = []
    while not feed.exhausted:
        bars = feed.poll(0.0)
        if bars:
            out.append({b.symbol: b for b in bars})
    return out


def timed(ex: Executor, rows: list[dict[str, Bar]], *, journal: bool) -> list[int]:
    """Nanoseconds per row, after the first ``SKIP`` rows."""
    out = []
    clock: Callable[[], int] = time.perf_counter_ns
    for n, row in enumerate(rows):
        open_ms = next(iter(row.values())).open_ms
        t0 = clock()
        decisions, legs = ex.decide_row(open_ms, row)
        if journal:
            ex.journal.record_row(
                decisions, strategy="probe", bundle="probe/1", orders=legs, row_ms=open_ms
            )
        elapsed = clock() - t0
        if n >= SKIP:
            out.append(elapsed)
    return out


def _spin(n: int) -> float:
    total = 0.0
    for i in range(n):
        total += i * 0.5
    return total


def floor(median_ns: float, samples: int = 5000) -> list[int]:
    """Nanoseconds of a fixed computation sized to take ``median_ns``: the same work every
    time, so its spread is the machine's (interrupts, the hypervisor), not the code's."""

    def typical(n: int) -> float:  # the median of a few runs: one may meet an interrupt
        runs = []
        for _ in range(31):
            t0 = time.perf_counter_ns()
            _spin(n)
            runs.append(time.perf_counter_ns() - t0)
        return sorted(runs)[15]

    n = 64
    while typical(n) < median_ns:
        n *= 2
    n = max(1, round(n * median_ns / typical(n)))
    out = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        _spin(n)
        out.append(time.perf_counter_ns() - t0)
    return out


def probe(bundle_path: Path, state: Path, passes: int) -> dict[str, list[int]]:
    bundle = load_bundle(bundle_path, live=True)
    # Steady state: a live process answers with LightGBM's library only until the compiled
    # evaluator has loaded beside it (a second or two after its first decision).
    if not bundle.row_model.wait_compiled(120):
        raise SystemExit("the compiled evaluator did not load")
    cases = {
        "row": (SYMBOLS, "paper"),
        "bar": (SYMBOLS[:1], "paper"),
        "bar, order broker": (SYMBOLS[:1], "book"),
    }
    out: dict[str, list[int]] = {}
    for name, (symbols, broker) in cases.items():
        modes = [("", False, False)]
        if broker == "paper":
            modes += [(" + journal", True, False), (" + journal (durable)", True, True)]
        for suffix, journal, durable in modes:
            key = name + suffix
            out[key] = []
            for p in range(passes):
                folder = state / f"{key}-{p}".replace(" ", "_").replace(",", "")
                ex, feed = executor(folder, bundle, symbols, durable=durable, broker=broker)
                out[key] += timed(ex, rows_of(feed), journal=journal)
                ex.journal.close()
    bar = sorted(out["bar"])
    out["floor"] = floor(bar[len(bar) // 2])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("state", type=Path)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    timings = probe(args.bundle, args.state, args.passes)
    heavy = sorted(m for m in ("pandas", "lightgbm", "sklearn", "mlflow") if m in sys.modules)
    json.dump({"timings": timings, "heavy_modules": heavy}, sys.stdout)


if __name__ == "__main__":
    main()
