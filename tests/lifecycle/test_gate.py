"""The promotion gate's rule, on its own: every check can fail, and each failure is named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlalgo.backtest.sharpe_stats import probabilistic_sharpe_ratio
from mlalgo.config import PromoteConfig
from mlalgo.promotion import Evaluation, deflate, judge

GATE = PromoteConfig(enabled=True, margin=0.1, min_trades=5, min_dsr=0.5, max_drawdown=0.2)
GOOD = {"sharpe": 1.2, "total_return": 0.1, "max_drawdown": -0.05, "n_trades": 20.0, "dsr": 0.9}


def test_a_challenger_without_a_champion_needs_only_the_sanity_gates() -> None:
    ok, reason, checks = judge(GOOD, None, GATE)

    assert ok and all(checks.values())
    assert reason.startswith("no champion yet")


@pytest.mark.parametrize(
    ("change", "check", "words"),
    [
        ({"sharpe": math.nan}, "finite metrics", "non-finite"),
        ({"n_trades": 4.0}, "min trades", "4 trades < min_trades 5"),
        ({"dsr": 0.49}, "deflated Sharpe", "DSR 0.490 < min_dsr 0.5"),
        ({"max_drawdown": -0.21}, "max drawdown", "max drawdown 21.0% > limit 20.0%"),
    ],
)
def test_each_sanity_gate_rejects_on_its_own(change, check, words) -> None:
    ok, reason, checks = judge({**GOOD, **change}, None, GATE)

    assert not ok
    assert not checks[check]
    assert [name for name, passed in checks.items() if not passed] == [check] or check == (
        "finite metrics"
    )
    assert words in reason


def test_the_challenger_must_beat_the_champion_by_more_than_the_margin() -> None:
    assert judge(GOOD, {**GOOD, "sharpe": 1.05}, GATE)[0]  # 1.2 > 1.05 + 0.1
    ok, reason, checks = judge(GOOD, {**GOOD, "sharpe": 1.1}, GATE)  # 1.2 is not > 1.2

    assert not ok and not checks["beats champion"]
    assert "does not beat champion's 1.1 + margin 0.1" in reason


def test_the_gate_compares_the_configured_metric() -> None:
    gate = GATE.model_copy(update={"metric": "total_return", "margin": 0.0})

    assert not judge(GOOD, {**GOOD, "sharpe": -5.0, "total_return": 0.2}, gate)[0]
    assert judge(GOOD, {**GOOD, "sharpe": 5.0, "total_return": 0.05}, gate)[0]


def test_a_champion_without_a_finite_score_is_beaten_by_a_sound_challenger() -> None:
    assert judge(GOOD, {**GOOD, "sharpe": math.nan}, GATE)[0]


def test_all_failures_are_listed() -> None:
    ok, reason, _ = judge({**GOOD, "n_trades": 1.0, "dsr": 0.1}, {**GOOD, "sharpe": 2.0}, GATE)

    assert not ok
    assert reason.count(";") == 2  # trades, DSR and the champion comparison


def test_deflating_for_a_second_model_never_raises_the_probability() -> None:
    rng = np.random.default_rng(3)
    mine = rng.normal(0.001, 0.01, 250)
    theirs = rng.normal(0.0, 0.01, 250)
    ch = Evaluation("2", {}, mine)

    alone = deflate(ch, None)
    against = deflate(ch, Evaluation("1", {}, theirs))

    assert alone == pytest.approx(probabilistic_sharpe_ratio(mine))
    assert against < alone
