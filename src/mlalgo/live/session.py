"""A live session from its settings: bundle, feed, broker, journal and executor, wired once.

Imports of feeds and brokers happen here, on demand, so the live process loads only the one
it uses (and never pandas or MLflow).
"""

from __future__ import annotations

import calendar
import gc
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

from mlalgo.bundle import Bundle
from mlalgo.config import ConfigError
from mlalgo.data.intervals import interval_ms
from mlalgo.live.config import LiveConfig
from mlalgo.live.executor import Executor
from mlalgo.live.journal import Journal
from mlalgo.live.resolve import is_registry_uri, resolve

SAMPLE = Path("data/sample/stocks_daily.csv")


def to_ms(value: str | None, key: str) -> int | None:
    """An ISO date or date-time (UTC when it has no zone) as epoch ms."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{key}: expected an ISO date like 2012-01-03 (got {value!r})") from None
    if ts.tzinfo is not None:
        return int(ts.timestamp() * 1000)
    return calendar.timegm(ts.timetuple()) * 1000 + ts.microsecond // 1000


def make_feed(cfg: LiveConfig, symbols: list[str], resume_ms: int | None = None) -> Any:
    """The configured feed; ``resume_ms``: the first bar owed after the journal's last."""
    from mlalgo.live.feeds.factory import KINDS
    from mlalgo.live.feeds.factory import make_feed as factory

    f = cfg.feed
    options: dict[str, Any] = {
        "base_url": f.base_url,
        "ws_url": f.ws_url,
        "path": f.path or SAMPLE,
        "start_ms": resume_ms if resume_ms is not None else to_ms(f.start, "feed.start"),
        "end_ms": to_ms(f.end, "feed.end"),
        "pace": f.pace,
        "provider": f.provider,
        "poll_every": f.poll_every,
    }
    if f.kind == "rest-poll" and f.provider == "alpaca":
        from mlalgo.secrets import load_credentials

        creds = load_credentials("alpaca", file=cfg.broker.credentials)
        options["key"] = creds
    used = {k: v for k, v in options.items() if k in KINDS[f.kind] and v is not None}
    try:
        return factory(f.kind, symbols=symbols, interval=f.interval, **used)
    except ValueError as exc:
        raise ConfigError(f"feed: {exc}") from None


def make_broker(cfg: LiveConfig, bundle: Bundle, symbols: list[str]) -> Any:
    b = cfg.broker
    if b.kind == "paper":
        from mlalgo.live.paper_broker import PaperBroker

        return PaperBroker(
            bundle.execution,
            symbols,
            cash=b.cash,
            periods_per_year=float(bundle.manifest.get("periods_per_year") or 252),
        )
    from mlalgo.secrets import load_credentials

    if b.base_url is None:
        raise ConfigError(f"broker.base_url: required for the {b.kind} broker (--base-url URL)")
    creds = load_credentials(b.kind, file=b.credentials)
    if b.kind == "binance":
        from mlalgo.live.brokers.binance import BinanceBroker

        return BinanceBroker(b.base_url, creds, symbols=symbols, quote=b.quote)
    from mlalgo.live.brokers.alpaca import AlpacaBroker

    return AlpacaBroker(b.base_url, creds)


class Session:
    """Everything one ``mlalgo live`` run holds; ``run()`` until the feed ends or SIGTERM."""

    def __init__(self, cfg: LiveConfig, *, mlflow_config: Path = Path("mlflow.yaml")) -> None:
        if cfg.model is None:
            raise ConfigError("model: required (--model models:/NAME@champion or a bundle folder)")
        self.cfg = cfg
        model = cfg.model
        self.bundle = resolve(model, mlflow_config=mlflow_config)
        self.symbols = cfg.symbols or list(self.bundle.symbols)
        unknown = [s for s in self.symbols if self.bundle.symbols and s not in self.bundle.symbols]
        if unknown:
            raise ConfigError(
                f"symbols: {', '.join(unknown)} not among the bundle's {list(self.bundle.symbols)}"
            )
        self.strategy = cfg.strategy or self.bundle.manifest.get("name") or "mlalgo"
        self.journal = Journal(cfg.journal_path(self.strategy), durable=cfg.durable)
        last = self.journal.last_row()
        try:
            interval = interval_ms(cfg.feed.interval)
        except ValueError as exc:
            raise ConfigError(f"feed.interval: {exc}") from None
        self.feed = make_feed(cfg, self.symbols, None if last is None else last + interval)
        self.broker = make_broker(cfg, self.bundle, self.symbols)
        reload = None
        if is_registry_uri(model) and cfg.reload_every is not None:

            def reload() -> Bundle:
                return resolve(model, mlflow_config=mlflow_config)

        self.executor = Executor(
            cfg,
            self.bundle,
            self.feed,
            self.broker,
            self.journal,
            strategy=self.strategy,
            symbols=self.symbols,
            reload=reload,
        )

    def run(self) -> None:
        """Graceful on SIGTERM/SIGINT: the current row finishes, state is written, then exit."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.executor.stop())
        try:
            self.executor.start(first_ms=to_ms(self.cfg.feed.start, "feed.start"))
            settle_heap()
            self.executor.run()
        finally:
            self.feed.close()
            self.journal.close()


def settle_heap() -> None:
    """Once started, the process holds what it will hold until it exits (the bundle, the
    warmed features, the journal's connection, the imported modules). ``gc.freeze`` takes
    those objects out of the cyclic collector's sight, so a collection that falls during a
    bar walks only what that bar allocated: the decision's tail latency is a collection of a
    few hundred objects, not of the whole heap."""
    gc.collect()
    gc.freeze()
