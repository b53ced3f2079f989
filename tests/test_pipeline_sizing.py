"""Sizing and risk limits from the pipeline YAML reach the walk-forward backtest intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import short_config

from mlalgo.pipeline import load_bars, periods_per_year, research
from mlalgo.policy import decide, realised_volatility


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory):
    cfg = short_config(
        tmp_path_factory.mktemp("sized") / "models",
        "stages.backtest.policy.allow_short=true",
        "stages.backtest.policy.kelly_fraction=0.5",
        "stages.backtest.policy.vol_target=0.1",
        "stages.backtest.policy.vol_cap=1.5",
        "stages.backtest.risk.stop_loss=0.04",
        "stages.backtest.risk.max_leverage=1.0",
    )
    bars = load_bars(cfg)[0]
    return cfg, bars, research(cfg, bars)


def test_targets_are_decide_with_kelly_and_volatility_split_between_symbols(sized) -> None:
    cfg, bars, res = sized
    policy = cfg.stages.backtest.policy
    ppy = periods_per_year(cfg)
    target = res.target
    for symbol in ("AAPL", "MSFT"):
        closes = bars.xs(symbol, level="symbol")["close"]
        vol = realised_volatility(closes.to_numpy(), policy.vol_window, ppy)
        proba = res.walk_forward.proba.xs(symbol, level="symbol").reindex(closes.index)
        mine = target.xs(symbol, level="symbol")
        expected = decide(proba.to_numpy(), policy, vol)[closes.index.isin(mine.index)] / 2
        np.testing.assert_allclose(mine.to_numpy(), expected, rtol=1e-12)
    sized_targets = target.dropna()
    assert sized_targets.abs().max() <= 0.5 * 0.5 * 1.5 + 1e-12  # Kelly <= size 1, x vol_cap
    assert sized_targets[sized_targets != 0].abs().nunique() > 50  # sizes vary with vol


def test_stops_and_the_leverage_cap_act_in_the_walk_forward_backtest(sized) -> None:
    _, bars, res = sized
    trades = res.strategy.trades
    assert (trades["exit_reason"] == "stop_loss").sum() > 0
    stopped = trades[trades["exit_reason"] == "stop_loss"]
    # a stop exits at or beyond 4 % against the entry (the fill pays slippage too)
    loss = stopped["direction"] * (stopped["exit_price"] / stopped["entry_price"] - 1)
    assert (loss <= -0.04 + 1e-12).all()
    closes = bars["close"].unstack("symbol").reindex(res.strategy.positions.index).ffill()
    gross = (res.strategy.positions.abs() * closes).sum(axis=1)
    assert (gross <= res.strategy.equity * 1.0 * (1 + 0.05)).all()  # within a day's move


def test_a_config_error_in_the_risk_section_names_the_key(tmp_path: Path) -> None:
    from mlalgo.config import ConfigError

    with pytest.raises(ConfigError, match="stop_loss"):
        short_config(tmp_path / "models", "stages.backtest.risk.stop_loss=1.5")
