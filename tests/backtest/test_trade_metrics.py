"""Tests for the per-trade metrics (average win and loss, expectancy, win/loss ratio), each
against a value computed by hand, and their place in :func:`summarize`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlalgo.backtest import metrics as m

# Wins 10, 20, 30 and losses -5, -15: avg_win = 60 / 3 = 20, avg_loss = -20 / 2 = -10,
# hit_rate = 3 / 5, expectancy = (60 - 20) / 5 = 8 = 0.6 * 20 + 0.4 * (-10) = 12 - 4,
# win/loss ratio = 20 / 10 = 2.
PNL = np.array([10.0, -5.0, 20.0, -15.0, 30.0])


def test_hand_computed_values() -> None:
    assert m.avg_win(PNL) == pytest.approx(20.0)
    assert m.avg_loss(PNL) == pytest.approx(-10.0)
    assert m.expectancy(PNL) == pytest.approx(8.0)
    assert m.win_loss_ratio(PNL) == pytest.approx(2.0)


def test_expectancy_decomposes_into_hit_rate_and_averages() -> None:
    hit = m.hit_rate(PNL)
    assert m.expectancy(PNL) == pytest.approx(hit * m.avg_win(PNL) + (1 - hit) * m.avg_loss(PNL))


def test_zero_trade_is_neither_win_nor_loss() -> None:
    # [4, 0, -2]: avg_win = 4, avg_loss = -2, ratio = 2; expectancy = (4 + 0 - 2) / 3 = 2/3,
    # not hit_rate * 4 + (1 - hit_rate) * (-2) = 4/3 - 4/3 = 0, which counts the zero as a loss.
    pnl = [4.0, 0.0, -2.0]
    assert m.avg_win(pnl) == 4.0 and m.avg_loss(pnl) == -2.0
    assert m.win_loss_ratio(pnl) == 2.0
    assert m.expectancy(pnl) == pytest.approx(2 / 3)


def test_no_trades() -> None:
    assert math.isnan(m.avg_win([])) and math.isnan(m.avg_loss([]))
    assert m.expectancy([]) == 0.0
    assert math.isnan(m.win_loss_ratio([]))
    assert math.isnan(m.win_loss_ratio([0.0, 0.0]))  # trades, but neither a win nor a loss


def test_only_wins() -> None:
    # avg_win = (1 + 3) / 2 = 2; no loss, so the ratio is unbounded and expectancy the mean.
    pnl = [1.0, 3.0]
    assert m.avg_win(pnl) == 2.0 and math.isnan(m.avg_loss(pnl))
    assert m.expectancy(pnl) == 2.0
    assert m.win_loss_ratio(pnl) == math.inf


def test_only_losses() -> None:
    # avg_loss = (-2 - 4) / 2 = -3; no win, so the ratio is 0 like profit_factor.
    pnl = [-2.0, -4.0]
    assert math.isnan(m.avg_win(pnl)) and m.avg_loss(pnl) == -3.0
    assert m.expectancy(pnl) == -3.0
    assert m.win_loss_ratio(pnl) == 0.0 and m.profit_factor(pnl) == 0.0


def test_rejects_two_dimensional_pnl() -> None:
    for fn in (m.avg_win, m.avg_loss, m.expectancy, m.win_loss_ratio):
        with pytest.raises(ValueError, match="must be 1-D"):
            fn(np.ones((2, 2)))


def _summarize(pnl: list[float]) -> dict[str, float]:
    return m.summarize(
        [100.0, 101.0, 102.0],
        initial=100.0,
        trade_pnl=pnl,
        in_market=[0.0, 1.0, 1.0],
        traded_notional=[100.0],
    )


def test_summarize_reports_the_new_keys_consistently() -> None:
    s = _summarize(list(PNL))
    assert {"avg_win", "avg_loss", "expectancy"} <= set(m.SUMMARY_KEYS)
    assert tuple(s) == m.SUMMARY_KEYS
    assert s["avg_win"] == m.avg_win(PNL) == pytest.approx(20.0)
    assert s["avg_loss"] == m.avg_loss(PNL) == pytest.approx(-10.0)
    assert s["expectancy"] == m.expectancy(PNL) == pytest.approx(8.0)
    assert s["expectancy"] == pytest.approx(s["avg_trade"])


def test_summarize_sentinels_without_trades() -> None:
    s = _summarize([])
    assert math.isnan(s["avg_win"]) and math.isnan(s["avg_loss"])
    assert s["expectancy"] == 0.0 and math.isnan(s["avg_trade"])
