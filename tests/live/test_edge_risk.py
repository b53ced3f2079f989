"""The edge refuses every kind of bad bar before it changes state; the gate's sizing, caps,
hours, order rate and account limits follow the backtest's rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from mlalgo.config import ConfigError
from mlalgo.data.bar import Bar
from mlalgo.live.config import HoursConfig, load_live_config
from mlalgo.live.edge import ACCEPT, DUPLICATE, REJECT, Edge
from mlalgo.live.risk import OrderRate, TradingHours, breach, cap_units, desired_units

DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY


def bar(i: int, symbol: str = "AAPL", **kw: float) -> Bar:
    values = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1e6} | kw
    return Bar(symbol, T0 + i * DAY, **values)


def test_the_edge_accepts_new_closed_bars_and_names_what_is_wrong_with_the_rest() -> None:
    now = T0 + 10 * DAY
    edge = Edge(["AAPL", "MSFT"], DAY, now_ms=lambda: now)
    assert edge.check(bar(0)).action == ACCEPT
    edge.accept(bar(0))
    cases = {
        "not traded": bar(1, "TSLA"),
        "high < low": bar(1, high=8.0),
        "non-positive": bar(1, open=-1.0, low=-1.0),
        "non-finite": bar(1, close=math.nan),
        "not closed": bar(10),
        "out of order": Bar("AAPL", T0 - DAY, 10.0, 11.0, 9.0, 10.5, 1.0),
    }
    for words, b in cases.items():
        verdict = edge.check(b)
        assert verdict.action == REJECT and words in verdict.reason, (words, verdict)
    assert edge.check(bar(0)).action == DUPLICATE
    gap = edge.check(bar(4))
    assert gap.action == ACCEPT and gap.gap == (T0 + DAY, T0 + 4 * DAY)
    assert edge.last == {"AAPL": T0}  # judging changes nothing; accept does


def test_sizing_matches_the_backtest_rules_and_caps_bind_in_order() -> None:
    kw = {"unit_size": 5.0, "commission_rate": 0.001, "current": 0.0}
    assert desired_units(0.5, 1000.0, 10.0, sizing="units", **kw) == 2.5
    frac = desired_units(0.5, 1000.0, 10.0, sizing="fraction", **kw)
    assert frac == pytest.approx(0.5 * 1000.0 / (10.0 * 1.001))
    assert desired_units(0.5, 1000.0, 10.0, sizing="whole", **kw) == 49.0
    assert desired_units(-0.5, 1000.0, 10.0, sizing="whole", **kw) == -49.0
    assert desired_units(1.0, -5.0, 10.0, sizing="fraction", **kw) == 0.0  # bankrupt

    caps = {"max_position": 0.2, "max_units": None, "max_notional": None, "whole": False}
    assert cap_units(50.0, 10.0, 1000.0, **caps) == (20.0, "max_position")
    caps |= {"max_units": 15.0}
    assert cap_units(-50.0, 10.0, 1000.0, **caps) == (-15.0, "max_units")
    caps |= {"max_notional": 55.0, "whole": True}
    assert cap_units(50.0, 10.0, 1000.0, **caps) == (5.0, "max_notional")
    assert cap_units(3.0, 10.0, 1000.0, **caps) == (3.0, "")


def test_trading_hours_in_the_exchange_zone_and_across_midnight() -> None:
    ny = TradingHours(HoursConfig(start="09:30", end="16:00", timezone="America/New_York",
                                  days=("mon", "tue", "wed", "thu", "fri")))  # fmt: skip

    def at(*args: int) -> float:
        return datetime(*args, tzinfo=UTC).timestamp()

    assert ny.open_at(at(2026, 7, 1, 13, 30))  # 09:30 EDT, a Wednesday
    assert not ny.open_at(at(2026, 7, 1, 13, 29))
    assert not ny.open_at(at(2026, 7, 1, 20, 0))  # 16:00 EDT: the window is half-open
    assert ny.open_at(at(2026, 1, 7, 14, 30))  # 09:30 EST in winter
    assert not ny.open_at(at(2026, 7, 4, 15, 0))  # Saturday
    night = TradingHours(HoursConfig(start="22:00", end="02:00"))
    assert night.open_at(at(2026, 7, 1, 23, 0)) and night.open_at(at(2026, 7, 1, 1, 0))
    assert not night.open_at(at(2026, 7, 1, 12, 0))


def test_order_rate_and_account_limits() -> None:
    now = [0.0]
    rate = OrderRate(2, clock=lambda: now[0])
    for _ in range(2):
        assert rate.allow()
        rate.record()
    assert not rate.allow()
    now[0] = 60.0
    assert rate.allow()

    limits = {"max_drawdown": 0.2, "max_daily_loss": 0.05}
    assert breach(100.0, 100.0, 100.0, **limits) == ""
    assert breach(94.0, 100.0, 99.0, **limits) == "max_daily_loss"
    assert breach(80.0, 100.0, 80.0, **limits) == "max_drawdown"  # at the limit, as the core
    assert breach(50.0, 100.0, 50.0, max_drawdown=None, max_daily_loss=None) == ""


def test_live_config_errors_name_the_file_and_key(tmp_path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text("guards:\n  hours:\n    start: '9:30'\n  max_orders_per_minute: 0\n")
    with pytest.raises(ConfigError) as err:
        load_live_config(path)
    text = str(err.value)
    assert f"{path}: guards.hours.start" in text and "HH:MM" in text
    assert f"{path}: guards.max_orders_per_minute" in text
    path.write_text("feed:\n  kind: kafka\n")
    with pytest.raises(ConfigError, match=r"feed\.kind"):
        load_live_config(path)
