"""Where the start of ``mlalgo live`` goes: the session's steps, timed one by one.

python -m benchmarks.start_probe SPAWN_TIME ARGS...   (ARGS: the ``mlalgo live`` flags)

Run by :mod:`benchmarks.bench_live` with ``SPAWN_TIME`` = ``time.time()`` just before it
started this process. It does what :class:`mlalgo.live.session.Session` does on a first start
(no journal yet), in the same order, with a timer between steps, and prints them as JSON.
The paper broker's account (numba's runtime and the backtest core, from numba's cache) is
timed as a step of its own: a session loads it at its first fill, after the first decision
is journalled; a session with a real broker never imports numba.
"""

from __future__ import annotations

import time

T_MAIN = time.time()

import json  # noqa: E402
import sys  # noqa: E402


def main() -> None:
    spawned = float(sys.argv[1])
    steps: dict[str, float] = {"interpreter start": T_MAIN - spawned}
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[name] = now - clock
        clock = now

    from mlalgo.live.cli import _run_parser, _updates
    from mlalgo.live.config import load_live_config
    from mlalgo.live.executor import Executor
    from mlalgo.live.journal import Journal
    from mlalgo.live.resolve import resolve
    from mlalgo.live.session import make_broker, make_feed, to_ms

    step("imports (live CLI, session, executor, journal)")
    args = _run_parser().parse_args(sys.argv[2:])
    cfg = load_live_config(args.config, _updates(args))
    step("settings")
    bundle = resolve(cfg.model, mlflow_config=args.mlflow_config)
    step("bundle: verify hashes, load the model into LightGBM's C library")
    symbols = cfg.symbols or list(bundle.symbols)
    strategy = cfg.strategy or bundle.manifest.get("name") or "mlalgo"
    journal = Journal(cfg.journal_path(strategy), durable=cfg.durable)
    step("journal")
    feed = make_feed(cfg, symbols)
    step("feed")
    broker = make_broker(cfg, bundle, symbols)
    step("broker")
    ex = Executor(cfg, bundle, feed, broker, journal, strategy=strategy, symbols=symbols)
    ex.start(first_ms=to_ms(cfg.feed.start, "feed.start"))
    step("Executor.start: warm-up from history, reconcile")
    if hasattr(broker, "sim"):
        broker.sim  # noqa: B018 - a cached property: the paper account's first use
        step("paper account at its first fill: numba's runtime, the backtest core from cache")
    first = feed.poll(5.0)  # a network feed's first poll is on its own thread
    for bar in first:
        ex.offer(bar)
    ex.process_ready(final=True)
    step("first row (decision, journal, fill or order)")
    journal.close()
    if hasattr(feed, "close"):
        feed.close()
    json.dump(steps, sys.stdout)


if __name__ == "__main__":
    main()
