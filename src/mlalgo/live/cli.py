"""``mlalgo live``: run the executor, read its status, pull the kill switch.

Plain argparse rather than the main command's typer app, because that app imports the
research stack (pandas) and the live process must not.

    mlalgo live --model models:/NAME@champion --feed replay --broker paper [--symbols A,B]
    mlalgo live status [--strategy NAME]
    mlalgo live kill [--reason TEXT]      # flatten and halt, also across restarts
    mlalgo live resume                    # clear the kill switch (a person's decision)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlalgo.bundle import BundleError
from mlalgo.config import ConfigError
from mlalgo.live.broker import BrokerError
from mlalgo.live.config import LiveConfig, load_live_config
from mlalgo.live.events import json_logging, read_status
from mlalgo.live.risk import KILL_ACTED_FLAG, KILL_FLAG, PEAK_FLAG
from mlalgo.secrets import SecretsError, install_log_redaction


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlalgo live",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="live YAML (flags override it)")
    p.add_argument("--model", help="models:/NAME@alias or a bundle folder")
    p.add_argument("--feed", choices=["replay", "binance-ws", "rest-poll"])
    p.add_argument("--broker", choices=["paper", "binance", "alpaca"])
    p.add_argument("--symbols", help="comma-separated; default: the bundle's")
    p.add_argument("--base-url", help="REST root of the feed and broker (the replay exchange)")
    p.add_argument("--ws-url", help="WebSocket root of the binance-ws feed")
    p.add_argument("--interval", help="bar interval, e.g. 1d, 1m")
    p.add_argument("--path", type=Path, help="replay: the bar file (default: the sample)")
    p.add_argument("--start", help="replay: first bar to trade; earlier bars warm up")
    p.add_argument("--end", help="replay: last bar")
    p.add_argument("--credentials", type=Path, help="0600 YAML file with API keys")
    p.add_argument("--state-dir", type=Path, help="journal and status (default .mlalgo/live)")
    p.add_argument("--strategy", help="names the journal and client order ids")
    p.add_argument("--cash", type=float, help="paper: starting cash")
    p.add_argument("--mlflow-config", type=Path, default=Path("mlflow.yaml"))
    return p


def _updates(args: argparse.Namespace) -> dict[str, Any]:
    symbols = args.symbols.split(",") if args.symbols else None
    return {
        "model": args.model,
        "symbols": [s.strip() for s in symbols if s.strip()] if symbols else None,
        "strategy": args.strategy,
        "state_dir": str(args.state_dir) if args.state_dir else None,
        "feed.kind": args.feed,
        "feed.interval": args.interval,
        "feed.path": str(args.path) if args.path else None,
        "feed.start": args.start,
        "feed.end": args.end,
        "feed.base_url": args.base_url,
        "feed.ws_url": args.ws_url,
        "broker.kind": args.broker,
        "broker.base_url": args.base_url,
        "broker.credentials": str(args.credentials) if args.credentials else None,
        "broker.cash": args.cash,
    }


def _side_parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"mlalgo live {name}")
    p.add_argument("--config", type=Path)
    p.add_argument("--state-dir", type=Path)
    p.add_argument("--strategy", help="default: the only strategy under the state folder")
    if name == "kill":
        p.add_argument("--reason", default="manual kill")
    return p


def _strategy_dir(cfg: LiveConfig, strategy: str | None) -> Path:
    if strategy:
        return cfg.state_dir / strategy
    found = sorted(p.parent for p in cfg.state_dir.glob("*/journal.db"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ConfigError(f"--strategy: name one of the strategies under {cfg.state_dir} ({names})")
    return found[0]


def _side(name: str, argv: list[str]) -> int:
    from mlalgo.live.journal import Journal

    args = _side_parser(name).parse_args(argv)
    cfg = load_live_config(
        args.config, {"state_dir": str(args.state_dir) if args.state_dir else None}
    )
    folder = _strategy_dir(cfg, args.strategy)
    journal_path = folder / "journal.db"
    if not journal_path.exists():
        raise ConfigError(f"{journal_path}: no journal; has this strategy ever run?")
    journal = Journal(journal_path, durable=True)
    try:
        if name == "kill":
            journal.set_flag(KILL_FLAG, args.reason)
            print(f"kill switch set for {folder.name}: {args.reason}")
        elif name == "resume":
            # the peak the switch tripped against goes too: resuming means "trade from here"
            for key in (KILL_FLAG, KILL_ACTED_FLAG, PEAK_FLAG):
                journal.clear_flag(key)
            print(f"kill switch cleared for {folder.name}")
        else:
            status = read_status(folder / "status.json") or {}
            status |= {
                "positions": journal.positions(),
                "open_intents": [i.client_order_id for i in journal.open_intents()],
                "kill_switch": journal.flag(KILL_FLAG),
                "last_row_ms": journal.last_row(),
            }
            print(json.dumps(status, indent=2, sort_keys=True, default=str))
    finally:
        journal.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    install_log_redaction()
    try:
        if argv and argv[0] in ("status", "kill", "resume"):
            return _side(argv[0], argv[1:])
        from mlalgo.live.session import Session

        args = _run_parser().parse_args(argv)
        cfg = load_live_config(args.config, _updates(args))
        json_logging()
        Session(cfg, mlflow_config=args.mlflow_config).run()
    except (ConfigError, BundleError, SecretsError, BrokerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
