"""The live executor's settings: a YAML file (``mlalgo live --config``), command-line flags on
top. The bundle brings the decision and the execution it was judged under; this file says
where bars come from, where orders go, and the guards that stop a live account from trading
on bad data or past its limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from mlalgo.config import ConfigError, _Frozen, _read_yaml, _validate

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FeedConfig(_Frozen):
    kind: Literal["replay", "binance-ws", "rest-poll"] = "replay"
    interval: str = "1d"
    path: Path | None = None  # replay: the bar file (default: the bundled sample)
    start: str | None = None  # replay: first bar traded (ISO date); earlier bars warm up
    end: str | None = None
    base_url: str | None = None  # REST (binance-ws backfill, rest-poll)
    ws_url: str | None = None
    provider: Literal["binance", "alpaca"] = "binance"  # rest-poll
    poll_every: PositiveFloat = 1.0  # rest-poll, seconds
    pace: Annotated[float, Field(ge=0)] = 0.0  # replay: seconds between bar times


class BrokerConfig(_Frozen):
    kind: Literal["paper", "binance", "alpaca"] = "paper"
    base_url: str | None = None
    credentials: Path | None = None  # a credentials file (see mlalgo.secrets); or env vars
    cash: PositiveFloat = 100_000.0  # paper: starting cash
    quote: str = "USDT"  # binance: the account currency


class HoursConfig(_Frozen):
    """When orders may be sent; outside, intents wait (in the journal) for the window."""

    start: str = "00:00"
    end: str = "24:00"
    timezone: str = "UTC"
    days: tuple[str, ...] = DAYS

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        if v != "24:00" and not _HHMM.match(v):
            raise ValueError(f"expected a time of day HH:MM (got {v!r})")
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if d not in DAYS]
        if bad or not v:
            raise ValueError(f"expected days among {', '.join(DAYS)} (got {v!r})")
        return v


class GuardsConfig(_Frozen):
    stale_after: PositiveFloat = 3.0  # intervals without a bar before the stale guard acts
    on_stale: Literal["halt", "flatten"] = "halt"
    hours: HoursConfig | None = None
    max_orders_per_minute: Annotated[int, Field(gt=0)] = 60
    max_units: PositiveFloat | None = None  # |position| of one symbol, in units
    max_notional: PositiveFloat | None = None  # |position x price| of one symbol
    # account limits on the broker's equity; None takes the bundle's execution.risk value
    max_daily_loss: Fraction | None = None
    max_drawdown: Fraction | None = None


class LiveConfig(_Frozen):
    model: str | None = None  # models:/NAME@alias or a bundle folder
    symbols: tuple[str, ...] = ()  # default: the bundle's
    strategy: str | None = None  # names the client order ids; default: the bundle's name
    state_dir: Path = Path(".mlalgo/live")
    durable: bool = True  # fsync each journal commit
    warmup_bars: Annotated[int, Field(ge=0)] = 400
    row_wait: Annotated[float, Field(ge=0)] = 5.0  # seconds to wait for a row's other symbols
    heartbeat_every: PositiveFloat = 30.0
    unknown_wait: Annotated[float, Field(ge=0)] = (
        30.0  # seconds before an unanswered order is resent
    )
    reload_every: PositiveFloat | None = 300.0  # seconds between @alias checks
    feed: FeedConfig = FeedConfig()
    broker: BrokerConfig = BrokerConfig()
    guards: GuardsConfig = GuardsConfig()

    def journal_path(self, strategy: str) -> Path:
        return self.state_dir / strategy / "journal.db"

    def status_path(self, strategy: str) -> Path:
        return self.state_dir / strategy / "status.json"


def load_live_config(path: str | Path | None, updates: dict[str, Any] | None = None) -> LiveConfig:
    """The file (or defaults), then ``updates`` (dotted keys from flags), validated together so
    an error names the file and key either way."""
    raw: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    for key, value in (updates or {}).items():
        if value is None:
            continue
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: {part} must be a section")
        node[last] = value
    return _validate(LiveConfig, raw, str(path) if path else "mlalgo live", [])
