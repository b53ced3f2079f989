"""Exits, caps and account limits of the portfolio core, on small books worked out by hand.

Each test is a specification: the bars are chosen so the arithmetic fits in a comment, and
the comment is the expected answer. Unless a test says otherwise there is no commission, fills
are at the next open, and ``sizing="units"`` with ``unit_size=10`` makes a target of 1 ten
units whatever the equity, so the numbers stay round.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlalgo.backtest.core import EXIT_REASONS
from mlalgo.backtest.costs import CostModel
from mlalgo.backtest.portfolio import PortfolioSim, RiskLimits, simulate_portfolio

NO_LIMITS = RiskLimits()
NO_COST = CostModel(commission_bps=0.0, slippage_bps=0.0)
SLIP_10BPS = CostModel(commission_bps=0.0, slippage_bps=10.0)  # s = 0.001 on every market fill
NAN = math.nan
FLAT = (100.0, 100.0, 100.0, 100.0)
ABSENT = (NAN, NAN, NAN, NAN)
SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, KILL_SWITCH, DAILY_LOSS, OPEN = (
    EXIT_REASONS.index(name)
    for name in (
        "signal",
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "kill_switch",
        "daily_loss",
        "open",
    )
)

Bar = tuple[float, float, float, float]


def ohlc(*columns: list[Bar]) -> tuple[np.ndarray, ...]:
    """(open, high, low, close), each (bars, instruments), from one list of bars per instrument."""
    arr = np.array(columns, dtype=np.float64).transpose(1, 0, 2)  # (n, m, 4)
    return tuple(np.ascontiguousarray(arr[:, :, k]) for k in range(4))


def run(
    bars: list[Bar] | tuple[list[Bar], ...],
    target: list[float] | list[list[float]],
    *,
    cost: CostModel = NO_COST,
    limits: RiskLimits = NO_LIMITS,
    **kwargs: object,
) -> PortfolioSim:
    columns = bars if isinstance(bars, tuple) else (bars,)
    o, h, lo, c = ohlc(*columns)
    kwargs = {"cash": 10_000.0, "sizing": "units", "unit_size": 10.0} | kwargs
    return simulate_portfolio(o, h, lo, c, target, cost=cost, limits=limits, **kwargs)


def fills(sim: PortfolioSim) -> list[tuple[int, int, float, float, int]]:
    """(bar, asset, units, price, reason) of every fill."""
    f = sim.fills
    return [
        (int(f.bar[j]), int(f.asset[j]), float(f.units[j]), float(f.price[j]), int(f.reason[j]))
        for j in range(len(f))
    ]


def approx(values: list) -> object:
    return pytest.approx(values, rel=1e-12, abs=1e-9)


def assert_fills(sim: PortfolioSim, expected: list[tuple], first: int = 0) -> None:
    """The fills from the ``first`` on are ``expected``: bars, assets and reasons exactly,
    units and prices to rounding."""
    got = fills(sim)[first:]
    assert [(b, a, r) for b, a, _, _, r in got] == [(b, a, r) for b, a, _, _, r in expected]
    numbers = [x for _, _, u, p, _ in got for x in (u, p)]
    assert numbers == approx([x for _, _, u, p, _ in expected for x in (u, p)])


# ---------------------------------------------------------------- stop-loss and take-profit


def test_a_long_stop_hit_within_the_bar_fills_at_the_stop_less_slippage() -> None:
    # bar 1: buy 10 at 100 * 1.001 = 100.1; the stop is 100.1 * 0.95 = 95.095, the low 99
    #        stays above it.
    # bar 2: opens at 99, above the stop, and trades down to 94: sell 10 at the stop less
    #        slippage, 95.095 * 0.999 = 94.999905.
    # cash: 10 000 - 1 001 + 949.99905 = 9 948.99905; pnl 10 * (94.999905 - 100.1) = -51.00095
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (99.0, 99.5, 94.0, 96.0), (96.0, 97.0, 95.0, 96.0)]

    sim = run(bars, [1.0, NAN, NAN, NAN], cost=SLIP_10BPS, limits=RiskLimits(stop_loss=0.05))

    assert_fills(sim, [(1, 0, 10.0, 100.1, SIGNAL), (2, 0, -10.0, 94.999905, STOP_LOSS)])
    assert sim.cash[-1] == pytest.approx(9_948.99905, rel=1e-12)
    assert sim.trades.pnl.tolist() == approx([-51.00095])
    assert sim.trades.exit_reason.tolist() == [STOP_LOSS]
    assert sim.units[:, 0].tolist() == [0.0, 10.0, 0.0, 0.0]


def test_a_gap_below_the_stop_fills_at_the_open_less_slippage() -> None:
    # The stop is 95.095 (above). Bar 2 opens at 90, through it: sell at 90 * 0.999 = 89.91.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (90.0, 92.0, 89.0, 91.0)]

    sim = run(bars, [1.0, NAN, NAN], cost=SLIP_10BPS, limits=RiskLimits(stop_loss=0.05))

    assert_fills(sim, [(2, 0, -10.0, 89.91, STOP_LOSS)], first=1)


def test_a_short_stop_fills_at_the_stop_plus_slippage() -> None:
    # bar 1: short 10 at 100 * 0.999 = 99.9; stop 99.9 * 1.05 = 104.895.
    # bar 2: the high 106 touches it: buy back at 104.895 * 1.001 = 104.999895.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (101.0, 106.0, 100.0, 103.0)]

    sim = run(bars, [-1.0, NAN, NAN], cost=SLIP_10BPS, limits=RiskLimits(stop_loss=0.05))

    assert_fills(sim, [(1, 0, -10.0, 99.9, SIGNAL), (2, 0, 10.0, 104.999895, STOP_LOSS)])


def test_a_take_profit_fills_at_its_level_without_slippage() -> None:
    # Entry 100.1 as above; the take-profit is 100.1 * 1.05 = 105.105, a limit order: bar 2's
    # high 106 reaches it and it fills at exactly 105.105.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (101.0, 106.0, 100.5, 104.0)]

    sim = run(bars, [1.0, NAN, NAN], cost=SLIP_10BPS, limits=RiskLimits(take_profit=0.05))

    assert_fills(sim, [(2, 0, -10.0, 105.105, TAKE_PROFIT)], first=1)
    assert sim.trades.pnl.tolist() == approx([10 * (105.105 - 100.1)])


def test_a_gap_beyond_the_take_profit_fills_at_the_open_without_slippage() -> None:
    # Bar 2 opens at 107, beyond 105.105: the limit order fills at the better price, 107.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (107.0, 108.0, 106.0, 107.5)]

    sim = run(bars, [1.0, NAN, NAN], cost=SLIP_10BPS, limits=RiskLimits(take_profit=0.05))

    assert_fills(sim, [(2, 0, -10.0, 107.0, TAKE_PROFIT)], first=1)


def test_a_bar_that_touches_both_the_stop_and_the_take_profit_takes_the_stop() -> None:
    # Stop 95.095, take-profit 105.105; bar 2 spans 94..106 and nobody knows which came first:
    # the conservative reading is the stop, 95.095 * 0.999 = 94.999905.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (100.0, 106.0, 94.0, 100.0)]
    limits = RiskLimits(stop_loss=0.05, take_profit=0.05)

    sim = run(bars, [1.0, NAN, NAN], cost=SLIP_10BPS, limits=limits)

    assert_fills(sim, [(2, 0, -10.0, 94.999905, STOP_LOSS)], first=1)


# ---------------------------------------------------------------- trailing stop


def test_a_long_trailing_stop_follows_the_highs_of_earlier_bars() -> None:
    # trailing 10 %, no slippage.
    # bar 1: buy at 100; today's trail is from the entry, 90; the low 99 is above. Best: 104.
    # bar 2: trail 104 * 0.9 = 93.6; the low 95 is above it. This bar's own high (110) does
    #        not count yet: a trail from it, 99, would have been hit by the low. Best: 110.
    # bar 3: trail 110 * 0.9 = 99; the low 98 hits it: sell at 99.
    bars = [
        FLAT,
        (100.0, 104.0, 99.0, 103.0),
        (103.0, 110.0, 95.0, 108.0),
        (105.0, 106.0, 98.0, 100.0),
        FLAT,
    ]

    sim = run(bars, [1.0, NAN, NAN, NAN, NAN], limits=RiskLimits(trailing_stop=0.1))

    assert_fills(sim, [(1, 0, 10.0, 100.0, SIGNAL), (3, 0, -10.0, 99.0, TRAILING_STOP)])


def test_a_short_trailing_stop_follows_the_lows_of_earlier_bars() -> None:
    # bar 1: short at 100; trail 110, the high 101 is below it. Best (lowest low): 96.
    # bar 2: trail 96 * 1.1 = 105.6; the high 105 stays below it. Best: 90.
    # bar 3: trail 90 * 1.1 = 99; the high 100 hits it: buy back at 99.
    bars = [
        FLAT,
        (100.0, 101.0, 96.0, 97.0),
        (97.0, 105.0, 90.0, 92.0),
        (95.0, 100.0, 94.0, 99.0),
    ]

    sim = run(bars, [-1.0, NAN, NAN, NAN], limits=RiskLimits(trailing_stop=0.1))

    assert_fills(sim, [(1, 0, -10.0, 100.0, SIGNAL), (3, 0, 10.0, 99.0, TRAILING_STOP)])


def test_the_tighter_of_stop_loss_and_trailing_stop_applies() -> None:
    # stop-loss 5 % of entry 100 -> 95; trailing 3 % from the high of bar 1 (104) -> 100.88:
    # the trail is higher, so bar 2 (low 100) exits there as a trailing stop.
    bars = [FLAT, (100.0, 104.0, 99.0, 103.0), (103.0, 103.0, 100.0, 101.0)]

    sim = run(bars, [1.0, NAN, NAN], limits=RiskLimits(stop_loss=0.05, trailing_stop=0.03))

    assert_fills(sim, [(2, 0, -10.0, 104.0 * 0.97, TRAILING_STOP)], first=1)


# ---------------------------------------------------------------- after an exit


def test_after_a_stop_the_instrument_stays_flat_until_its_target_changes() -> None:
    # The standing target 1 led to the trade the stop closed on bar 2 (at 95); the decisions
    # of bars 2-4 say 1 again and do nothing. Bar 5 says 0.5: bar 6 buys 5 units.
    bars = [FLAT, (100.0, 101.0, 99.0, 100.0), (99.0, 99.0, 94.0, 96.0)] + [(96.0,) * 4] * 5
    target = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, NAN]

    sim = run(bars, target, limits=RiskLimits(stop_loss=0.05))

    assert_fills(
        sim,
        [(1, 0, 10.0, 100.0, SIGNAL), (2, 0, -10.0, 95.0, STOP_LOSS), (6, 0, 5.0, 96.0, SIGNAL)],
    )
    assert sim.units[:, 0].tolist() == [0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0]


# ---------------------------------------------------------------- kill switch


def test_the_kill_switch_flattens_at_the_next_open_and_nothing_trades_afterwards() -> None:
    # 100 units at 100 with 10 000 cash: all in. max_drawdown 10 %: the limit is 9 000.
    # bar 2 closes at 89: equity 8 900 <= 9 000 -> killed at bar 2.
    # bar 3: sell 100 at its open, 88 -> cash 8 800; the later decisions (-1, 1, 0.5) are
    # ignored for the rest of the run.
    bars = [FLAT, FLAT, (100.0, 100.0, 89.0, 89.0), (88.0,) * 4, (90.0,) * 4, (95.0,) * 4]
    target = [1.0, NAN, -1.0, 1.0, 0.5, NAN]

    sim = run(bars, target, unit_size=100.0, limits=RiskLimits(max_drawdown=0.1))

    assert sim.killed_at == 2
    assert_fills(sim, [(1, 0, 100.0, 100.0, SIGNAL), (3, 0, -100.0, 88.0, KILL_SWITCH)])
    assert sim.equity.tolist() == approx([10_000.0, 10_000.0, 8_900.0, 8_800.0, 8_800.0, 8_800.0])
    assert sim.trades.exit_reason.tolist() == [KILL_SWITCH]


def test_with_close_fills_the_kill_switch_flattens_at_the_breaching_close() -> None:
    # bar 0's decision fills at its close: 100 units at 100. Bar 1 closes at 89: equity
    # 8 900, killed, sold at that close, 89. Nothing trades after.
    bars = [FLAT, (100.0, 100.0, 89.0, 89.0), (88.0,) * 4, (90.0,) * 4]
    target = [1.0, NAN, -1.0, 1.0]

    sim = run(bars, target, unit_size=100.0, fill="close", limits=RiskLimits(max_drawdown=0.1))

    assert sim.killed_at == 1
    assert_fills(sim, [(0, 0, 100.0, 100.0, SIGNAL), (1, 0, -100.0, 89.0, KILL_SWITCH)])
    assert sim.equity.tolist() == approx([10_000.0, 8_900.0, 8_900.0, 8_900.0])


def test_the_kill_switch_measures_the_drawdown_from_the_running_peak() -> None:
    # Equity rises to 12 000 (bar 2), then falls to 10 900 (bar 3): 9.2 % off the peak, not
    # yet 10 %; bar 4 at 10 700 is 10.8 % off (limit 10 800): killed at bar 4, although the
    # account is still above its starting cash.
    closes = [100.0, 100.0, 120.0, 109.0, 107.0, 107.0]
    bars = [(c,) * 4 for c in closes]

    sim = run(bars, [1.0] + [NAN] * 5, unit_size=100.0, limits=RiskLimits(max_drawdown=0.1))

    assert sim.killed_at == 4
    assert sim.equity[4] == pytest.approx(10_700.0)
    assert_fills(sim, [(5, 0, -100.0, 107.0, KILL_SWITCH)], first=1)


# ---------------------------------------------------------------- max daily loss


DAY = [0, 0, 0, 1, 1, 1]  # two days of three intraday bars
DAILY_BARS = [
    FLAT,
    (100.0, 100.0, 94.0, 94.0),
    (95.0,) * 4,
    (95.0, 96.0, 95.0, 96.0),
    (96.0, 97.0, 96.0, 97.0),
    (97.0,) * 4,
]


def test_max_daily_loss_ignores_the_rest_of_the_days_decisions_and_trades_the_next_day() -> None:
    # 100 units at 100 on bar 1 (cash 0); it closes at 94: equity 9 400 <= 0.95 * 10 000.
    # bar 2 (same day): sell 100 at the open, 95 (daily loss); bar 1's decision -1 is ignored.
    # bar 3 (next day): bar 2's decision 0.5 was taken on the halted day: ignored.
    # bar 4: bar 3's decision (a new day) trades: buy 100 at 96 -> cash -100, equity 9 600.
    target = [1.0, -1.0, 0.5, 1.0, NAN, NAN]

    sim = run(DAILY_BARS, target, day=DAY, unit_size=100.0, limits=RiskLimits(max_daily_loss=0.05))

    assert_fills(
        sim,
        [
            (1, 0, 100.0, 100.0, SIGNAL),
            (2, 0, -100.0, 95.0, DAILY_LOSS),
            (4, 0, 100.0, 96.0, SIGNAL),
        ],
    )
    assert sim.equity.tolist() == approx([10_000.0, 9_400.0, 9_500.0, 9_500.0, 9_600.0, 9_600.0])
    assert sim.killed_at == -1


def test_after_a_daily_loss_flatten_a_standing_target_reenters_the_next_day() -> None:
    # The same day, with the target 1 at every bar: flattened on bar 2 like above, then the
    # first decision of day 1 (bar 3) buys again at bar 4's open.
    sim = run(
        DAILY_BARS, [1.0] * 6, day=DAY, unit_size=100.0, limits=RiskLimits(max_daily_loss=0.05)
    )

    assert [(b, r) for b, _, _, _, r in fills(sim)] == [(1, SIGNAL), (2, DAILY_LOSS), (4, SIGNAL)]
    assert sim.units[:, 0].tolist() == [0.0, 100.0, 0.0, 0.0, 100.0, 100.0]


def test_daily_loss_is_measured_from_the_previous_days_last_close() -> None:
    # Daily bars (each bar its own day). Equity 10 000, 9 600 (-4 %), 9 200 (-4.2 % on the day,
    # -8 % on the start): a 5 % daily limit is never breached.
    bars = [(c,) * 4 for c in (100.0, 100.0, 96.0, 92.0)]

    sim = run(bars, [1.0, NAN, NAN, NAN], unit_size=100.0, limits=RiskLimits(max_daily_loss=0.05))

    assert sim.equity.tolist() == approx([10_000.0, 10_000.0, 9_600.0, 9_200.0])
    assert [r for *_, r in fills(sim)] == [SIGNAL]


# ---------------------------------------------------------------- caps


def test_max_position_caps_an_instruments_exposure_at_a_fraction_of_equity() -> None:
    # fraction sizing: target 1.5 of 10 000 would be 150 units at 100; max_position 0.5 caps
    # it at 5 000 / 100 = 50 units.
    sim = run([FLAT, FLAT], [1.5, NAN], sizing="fraction", limits=RiskLimits(max_position=0.5))

    assert_fills(sim, [(1, 0, 50.0, 100.0, SIGNAL)])


def test_a_cap_that_turns_a_raised_target_into_a_sale_sells_at_the_bid() -> None:
    # slippage 10 bps, fraction sizing, max_position 0.5.
    # bar 1: target 1 capped: 5 000 / 100.1 = 49.95005 units at 100.1; cash 5 000.
    # The price doubles. bar 2: E = 5 000 + 49.95005 * 200 = 14 990.01. The target rises to 1.2
    # (a buy at 200.2), but the cap allows 0.5 * E / 200.2 = 37.438 units: the order sells
    # 12.512 units, and a sale gets the bid, 200 * 0.999 = 199.8, not the ask.
    bars = [FLAT, FLAT, (200.0,) * 4]
    limits = RiskLimits(max_position=0.5)

    sim = run(bars, [1.0, 1.2, NAN], cost=SLIP_10BPS, sizing="fraction", limits=limits)

    first = 5_000.0 / 100.1
    equity = 5_000.0 + first * 200.0
    after = 0.5 * equity / 200.2
    assert_fills(sim, [(1, 0, first, 100.1, SIGNAL), (2, 0, after - first, 199.8, SIGNAL)])


def test_max_leverage_scales_the_instruments_that_trade_together() -> None:
    # Two instruments at 100, each target 1 (100 units each, gross 20 000 on 10 000 equity);
    # max_leverage 1.5 scales both by 15 000 / 20 000 = 0.75: 75 units each, cash -5 000.
    sim = run(
        ([FLAT, FLAT], [FLAT, FLAT]),
        [[1.0, 1.0], [NAN, NAN]],
        sizing="fraction",
        limits=RiskLimits(max_leverage=1.5),
    )

    assert_fills(sim, [(1, 0, 75.0, 100.0, SIGNAL), (1, 1, 75.0, 100.0, SIGNAL)])
    assert sim.cash[-1] == pytest.approx(-5_000.0)


def test_max_leverage_leaves_the_instruments_that_keep_their_position_alone() -> None:
    # bar 1: A buys 100 units (10 000, within 1.5 x 10 000). bar 2: B's target 1 wants
    # another 10 000, but only 15 000 - 10 000 = 5 000 of room is left: B gets 50 units and A
    # keeps its 100.
    sim = run(
        ([FLAT] * 3, [FLAT] * 3),
        [[1.0, NAN], [NAN, 1.0], [NAN, NAN]],
        sizing="fraction",
        limits=RiskLimits(max_leverage=1.5),
    )

    assert_fills(sim, [(1, 0, 100.0, 100.0, SIGNAL), (2, 1, 50.0, 100.0, SIGNAL)])
    assert sim.units[-1].tolist() == [100.0, 50.0]


def test_min_trade_skips_a_small_rebalance_and_deems_the_position_on_target() -> None:
    # fraction sizing, min_trade 5 %.
    # bar 1: target 0.5 -> 50 units at 100, cash 5 000.
    # bar 2: target 0.52 -> 52 units: a 200 trade, under 5 % of 10 000 = 500: skipped.
    # bar 3: the price doubles (equity 15 000); the standing 0.52 would now mean 39 units,
    #        but 0.52 counts as reached: nothing trades on bars 3 and 4.
    # bar 5: target 0.55 -> 0.55 * 15 000 / 200 = 41.25 units: sell 8.75 (1 750 >= 750).
    bars = [FLAT] * 3 + [(200.0,) * 4] * 3
    target = [0.5, 0.52, 0.52, 0.52, 0.55, NAN]

    sim = run(bars, target, sizing="fraction", min_trade=0.05)

    assert_fills(sim, [(1, 0, 50.0, 100.0, SIGNAL), (5, 0, -8.75, 200.0, SIGNAL)])


def test_a_trade_of_exactly_min_trade_is_not_skipped() -> None:
    # 100 units at 100; target 1.05 adds 5 units = 500 = 5 % of 10 000: not smaller, trades.
    sim = run([FLAT] * 3, [1.0, 1.05, NAN], sizing="fraction", min_trade=0.05)

    assert_fills(sim, [(1, 0, 100.0, 100.0, SIGNAL), (2, 0, 5.0, 100.0, SIGNAL)])


# ---------------------------------------------------------------- sizing


def test_units_sizing_trades_target_times_unit_size_whatever_the_equity() -> None:
    # unit_size 10 on a 100 account: 0.5 -> 5 units (500 of stock on 100 of cash), then -2
    # -> -20 units: sell 25.
    sim = run([FLAT] * 4, [0.5, NAN, -2.0, NAN], cash=100.0)

    assert_fills(sim, [(1, 0, 5.0, 100.0, SIGNAL), (3, 0, -25.0, 100.0, SIGNAL)])
    assert sim.cash.tolist() == approx([100.0, -400.0, -400.0, 2_100.0])


def test_whole_sizing_floors_to_whole_units_with_the_commission_reserved() -> None:
    # commission 10 bps, price 30, cash 1 000.
    # bar 1: floor(1 000 / (30 * 1.001)) = floor(33.30) = 33 units; commission 0.99;
    #        cash 1 000 - 990 - 0.99 = 9.01.
    # bar 2: target 0.5. Closing the 33 first would leave 9.01 + 990 - 0.99 = 998.02;
    #        floor(0.5 * 998.02 / 30.03) = floor(16.62) = 16: sell 17 (commission 0.51);
    #        cash 9.01 + 510 - 0.51 = 518.50.
    bars = [(30.0,) * 4] * 3
    cost = CostModel(commission_bps=10.0, slippage_bps=0.0)

    sim = run(bars, [1.0, 0.5, NAN], cash=1_000.0, sizing="whole", cost=cost)

    assert_fills(sim, [(1, 0, 33.0, 30.0, SIGNAL), (2, 0, -17.0, 30.0, SIGNAL)])
    assert sim.fills.commission.tolist() == approx([0.99, 0.51])
    assert sim.cash.tolist() == approx([1_000.0, 9.01, 518.5])


def test_two_instruments_share_one_cash_account() -> None:
    # bar 1: A (target 1) buys 100 units at 100: cash 0.
    # bar 2: A opens at 110, so the account is worth 11 000; B's target 0.5 is sized from all
    #        of it, not from the (empty) cash: 0.5 * 11 000 / 50 = 110 units, cash -5 500.
    a = [FLAT, FLAT, (110.0,) * 4]
    b = [(50.0,) * 4] * 3

    sim = run((a, b), [[1.0, NAN], [NAN, 0.5], [NAN, NAN]], sizing="fraction")

    assert_fills(sim, [(1, 0, 100.0, 100.0, SIGNAL), (2, 1, 110.0, 50.0, SIGNAL)])
    assert sim.cash.tolist() == approx([10_000.0, 0.0, -5_500.0])
    assert sim.equity.tolist() == approx([10_000.0, 10_000.0, 11_000.0])


# ---------------------------------------------------------------- absent bars


def test_an_absent_bar_neither_fills_nor_stops_and_marks_at_the_last_close() -> None:
    # B: buy 10 at 100 on bar 1 (stop 95), close 98. Bar 2 is absent: no fill, no stop
    # check, B marked at its last close (equity 9 000 + 980 = 9 980). Bar 3 opens at 90,
    # through the stop: sold at 90 (equity 9 900). A has no bar before bar 2 and holds
    # nothing, so its missing prices do not touch the equity.
    a = [ABSENT, ABSENT, FLAT, FLAT]
    b = [FLAT, (100.0, 101.0, 97.0, 98.0), ABSENT, (90.0, 91.0, 89.0, 90.0)]
    target = [[NAN, 1.0], [NAN, NAN], [NAN, NAN], [NAN, NAN]]

    sim = run((a, b), target, limits=RiskLimits(stop_loss=0.05))

    assert_fills(sim, [(1, 1, 10.0, 100.0, SIGNAL), (3, 1, -10.0, 90.0, STOP_LOSS)])
    assert sim.equity.tolist() == approx([10_000.0, 9_980.0, 9_980.0, 9_900.0])


def test_a_decision_whose_fill_bar_is_absent_waits_for_the_next_bar() -> None:
    # The decision 1 of bar 0 would fill at bar 1's open, but the instrument has no bar 1;
    # bar 1's decision is NaN (hold), so the order fills at bar 2's open: 1 x 10 units. Bar
    # 2's decision 0.5 fills at bar 3: down to 5.
    bars = [FLAT, ABSENT, FLAT, FLAT]

    sim = run(bars, [1.0, NAN, 0.5, NAN])

    assert_fills(sim, [(2, 0, 10.0, 100.0, SIGNAL), (3, 0, -5.0, 100.0, SIGNAL)])


def test_a_newer_decision_replaces_one_still_waiting_for_its_bar() -> None:
    # Decisions 1 (bar 0) and 0.25 (bar 1) both fall on absent bars 1 and 2: only the newer,
    # 0.25 x 10 = 2.5 units, fills, at bar 3's open.
    bars = [FLAT, ABSENT, ABSENT, FLAT]

    sim = run(bars, [1.0, 0.25, NAN, NAN])

    assert_fills(sim, [(3, 0, 2.5, 100.0, SIGNAL)])


def test_a_kill_switch_flatten_waits_for_the_instruments_next_bar() -> None:
    # 50 units of each at 100, cash 0. A falls to 80 on bar 2: equity 4 000 + 5 000 = 9 000,
    # exactly 10 % off the peak (at or below trips it): killed. B has no bar 3, so A is sold at
    # bar 3's open and B waits for bar 4's.
    a = [FLAT, FLAT, (80.0,) * 4, (80.0,) * 4, (80.0,) * 4]
    b = [FLAT, FLAT, FLAT, ABSENT, FLAT]
    target = [[1.0, 1.0]] + [[NAN, NAN]] * 4

    sim = run((a, b), target, unit_size=50.0, limits=RiskLimits(max_drawdown=0.1))

    assert sim.killed_at == 2
    assert_fills(
        sim, first=2, expected=[(3, 0, -50.0, 80.0, KILL_SWITCH), (4, 1, -50.0, 100.0, KILL_SWITCH)]
    )
    assert sim.units[3].tolist() == [0.0, 50.0]
    assert sim.units[4].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stop_loss": 0.0}, "stop_loss"),
        ({"stop_loss": 1.0}, "stop_loss"),
        ({"trailing_stop": -0.1}, "trailing_stop"),
        ({"max_drawdown": 1.5}, "max_drawdown"),
        ({"max_daily_loss": 1.0}, "max_daily_loss"),
        ({"take_profit": 0.0}, "take_profit"),
        ({"max_position": -1.0}, "max_position"),
        ({"max_leverage": 0.0}, "max_leverage"),
        ({"stop_loss": True}, "stop_loss"),
        ({"stop_loss": "0.05"}, "stop_loss"),
    ],
)
def test_risk_limits_out_of_range_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RiskLimits(**kwargs)


def test_risk_limits_accept_a_take_profit_above_100_percent_and_caps_above_one() -> None:
    limits = RiskLimits(take_profit=2.0, max_position=3.0, max_leverage=4.0)
    assert (limits.take_profit, limits.max_position, limits.max_leverage) == (2.0, 3.0, 4.0)


def prices(n: int = 3, m: int = 1) -> dict[str, np.ndarray]:
    return {k: np.full((n, m), 100.0) for k in ("open_", "high", "low", "close")}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"high": np.array([[100.0], [99.0], [100.0]])}, "high below its open or close"),
        ({"low": np.array([[100.0], [101.0], [100.0]])}, "low above"),
        ({"close": np.array([[100.0], [NAN], [100.0]])}, "missing close"),
        ({"open_": np.array([[100.0], [-1.0], [100.0]])}, "finite and > 0"),
        ({"close": np.full((4, 1), 100.0)}, "shape"),
        ({"close": np.full((3, 1, 1), 100.0)}, r"\(bars, instruments\)"),
        ({"target": np.zeros((3, 2))}, "shape"),
        ({"target": np.array([1.0, math.inf, 0.0])}, "infinite"),
        ({"day": [0, 1]}, "day"),
        ({"day": [0, 2, 1]}, "non-decreasing"),
        ({"fill": "open"}, "fill"),
        ({"sizing": "shares"}, "sizing"),
        ({"cash": 0.0}, "cash"),
        ({"unit_size": 0.0}, "unit_size"),
        ({"min_trade": -0.1}, "min_trade"),
    ],
)
def test_bad_inputs_are_rejected_with_a_message_naming_the_problem(
    change: dict, match: str
) -> None:
    args = prices() | {"target": np.ones((3, 1))} | change
    positional = [args.pop(k) for k in ("open_", "high", "low", "close", "target")]
    with pytest.raises(ValueError, match=match):
        simulate_portfolio(*positional, **args)


def test_an_empty_market_is_rejected() -> None:
    empty = np.empty((0, 1))
    with pytest.raises(ValueError, match="no bars"):
        simulate_portfolio(empty, empty, empty, empty, empty)
