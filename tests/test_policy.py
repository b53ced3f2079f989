"""The decision policy: the one rule from P(up) to a target, shared by backtest and live."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlalgo.policy import DecisionPolicy, decide, decide_one, describe, realised_volatility

PROBA = np.array([0.0, 0.3, 0.45, 0.46, 0.5, 0.55, 0.56, 0.9, 1.0, np.nan])


def test_long_only_goes_long_strictly_above_the_long_threshold_and_flat_otherwise() -> None:
    policy = DecisionPolicy(long_threshold=0.55, short_threshold=0.45)

    target = decide(PROBA, policy)

    np.testing.assert_array_equal(target, [0, 0, 0, 0, 0, 0, 1, 1, 1, np.nan])


def test_with_shorts_goes_short_strictly_below_the_short_threshold() -> None:
    policy = DecisionPolicy(long_threshold=0.55, short_threshold=0.45, allow_short=True)

    target = decide(PROBA, policy)

    np.testing.assert_array_equal(target, [-1, -1, 0, 0, 0, 0, 1, 1, 1, np.nan])


def test_size_scales_the_target_both_ways() -> None:
    policy = DecisionPolicy(allow_short=True, size=0.25)

    target = decide(np.array([0.9, 0.5, 0.1]), policy)

    np.testing.assert_array_equal(target, [0.25, 0.0, -0.25])


def test_equal_thresholds_leave_only_the_threshold_itself_flat() -> None:
    policy = DecisionPolicy(long_threshold=0.5, short_threshold=0.5, allow_short=True)

    np.testing.assert_array_equal(decide(np.array([0.49, 0.5, 0.51]), policy), [-1, 0, 1])


def test_nan_means_no_decision_not_flat() -> None:
    target = decide(np.array([np.nan, np.nan]), DecisionPolicy(allow_short=True))

    assert np.isnan(target).all()


def test_a_scalar_prediction_gives_a_scalar_target() -> None:
    policy = DecisionPolicy(allow_short=True)

    assert float(decide(0.7, policy)) == 1.0
    assert float(decide(0.2, policy)) == -1.0
    assert float(decide(0.5, policy)) == 0.0
    assert np.isnan(decide(float("nan"), policy))
    assert np.ndim(decide(0.7, policy)) == 0


def test_decide_leaves_its_input_alone() -> None:
    proba = PROBA.copy()

    decide(proba, DecisionPolicy(allow_short=True))

    np.testing.assert_array_equal(proba, PROBA)


def test_describe_names_each_kind_of_target() -> None:
    assert [describe(x) for x in (1.0, 0.5, 0.0, -0.3, float("nan"))] == [
        "long",
        "long",
        "flat",
        "short",
        "none",
    ]


def test_a_short_threshold_above_the_long_threshold_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed long_threshold"):
        DecisionPolicy(long_threshold=0.5, short_threshold=0.6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"long_threshold": 1.1},
        {"long_threshold": -0.1, "short_threshold": -0.2},
        {"short_threshold": -0.01},
        {"long_threshold": 1.5, "short_threshold": 1.2},
    ],
)
def test_thresholds_outside_zero_to_one_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="threshold"):
        DecisionPolicy(**kwargs)


@pytest.mark.parametrize("size", [0.0, -1.0, 11.0])
def test_a_size_outside_zero_to_ten_is_refused(size: float) -> None:
    with pytest.raises(ValidationError, match="size"):
        DecisionPolicy(size=size)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="long_treshold"):
        DecisionPolicy(long_treshold=0.6)  # type: ignore[call-arg]


def test_a_policy_is_frozen() -> None:
    policy = DecisionPolicy()

    with pytest.raises(ValidationError):
        policy.long_threshold = 0.9  # type: ignore[misc]
    assert policy.long_threshold == 0.55


def test_kelly_sizes_a_fraction_of_the_kelly_bet_capped_at_size() -> None:
    policy = DecisionPolicy(allow_short=True, kelly_fraction=0.5, payoff_ratio=2.0, size=0.3)
    # long at p=0.6, odds 2: Kelly = 0.6 - 0.4 / 2 = 0.4, half of it 0.2
    # long at p=0.9: Kelly = 0.9 - 0.1 / 2 = 0.85, half 0.425, capped at 0.3
    # short at p=0.3: P(down)=0.7, Kelly = 0.7 - 0.3 / 2 = 0.55, half 0.275
    # short at p=0.44: P(down)=0.56, Kelly = 0.56 - 0.44 / 2 = 0.34, half 0.17
    got = decide(np.array([0.6, 0.9, 0.3, 0.44, 0.5]), policy)
    np.testing.assert_allclose(got, [0.2, 0.3, -0.275, -0.17, 0.0], rtol=1e-12)


def test_kelly_never_bets_against_a_losing_edge() -> None:
    # p just above the long threshold but at even odds the Kelly fraction of p=0.505 with
    # payoff 0.5 is negative: no bet rather than a short.
    policy = DecisionPolicy(long_threshold=0.5, kelly_fraction=1.0, payoff_ratio=0.5)
    assert decide(np.array([0.6]), policy).tolist() == [0.0]  # 0.6 - 0.4 / 0.5 = -0.2


def test_volatility_targeting_scales_by_target_over_realised_and_caps_the_scale() -> None:
    policy = DecisionPolicy(allow_short=True, vol_target=0.1, vol_cap=1.5)
    got = decide(
        np.array([0.7, 0.2, 0.7, 0.7, 0.7, 0.5]),
        policy,
        np.array([0.2, 0.05, 0.01, np.nan, 0.0, 0.3]),
    )
    np.testing.assert_allclose(got, [0.5, -1.5, 1.5, np.nan, np.nan, 0.0], rtol=1e-12)


def test_volatility_targeting_needs_a_volatility() -> None:
    with pytest.raises(ValueError, match="realised_volatility"):
        decide(np.array([0.7]), DecisionPolicy(vol_target=0.1))


def test_realised_volatility_is_the_annualised_std_of_the_last_window_log_returns() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 103.0, 101.0])
    got = realised_volatility(close, 3, 252)
    r = np.diff(np.log(close))
    assert np.isnan(got[:3]).all()
    for t in range(3, 6):
        assert got[t] == pytest.approx(np.std(r[t - 3 : t], ddof=1) * np.sqrt(252), rel=1e-12)
    changed = close.copy()
    changed[5] = 200.0
    assert realised_volatility(changed, 3, 252)[4] == got[4]  # no look-ahead


EDGES = [0.0, 0.3, 0.45, 0.48, 0.5, 0.52, 0.55, 0.7, 1.0, 1e-300, -0.0, math.inf, math.nan]
VOLS = [0.15, 1e-12, 0.0, -0.1, math.inf, math.nan, 3.0]
ONE_POLICIES = [
    DecisionPolicy(),
    DecisionPolicy(long_threshold=0.52, short_threshold=0.48, allow_short=True, size=0.25),
    DecisionPolicy(long_threshold=0.5, short_threshold=0.5, allow_short=True),
    DecisionPolicy(allow_short=True, kelly_fraction=0.5, payoff_ratio=1.3, size=0.4),
    DecisionPolicy(long_threshold=0.5, short_threshold=0.5, allow_short=True, kelly_fraction=1.0),
]


def same(a: float, b: float) -> bool:
    """Equal as floats, NaN matching NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("policy", ONE_POLICIES)
def test_decide_one_equals_decide_on_every_edge(policy: DecisionPolicy) -> None:
    for p in EDGES:
        assert same(decide_one(p, policy), float(decide(p, policy))), p
        vol_policy = policy.model_copy(update={"vol_target": 0.15, "vol_cap": 2.0})
        for vol in VOLS:
            got = decide_one(p, vol_policy, vol)
            assert same(got, float(decide(p, vol_policy, vol))), (p, vol)


@settings(max_examples=300, deadline=None)
@given(
    p=st.floats(allow_nan=True, allow_infinity=True),
    vol=st.floats(allow_nan=True, allow_infinity=True),
    long=st.floats(0.0, 1.0),
    gap=st.floats(0.0, 1.0),
    kelly=st.one_of(st.none(), st.floats(0.01, 1.0)),
    payoff=st.floats(0.01, 100.0),
    size=st.floats(0.01, 10.0),
    vol_target=st.one_of(st.none(), st.floats(0.01, 5.0)),
)
def test_decide_one_equals_decide_bit_for_bit(
    p: float,
    vol: float,
    long: float,
    gap: float,
    kelly: float | None,
    payoff: float,
    size: float,
    vol_target: float | None,
) -> None:
    policy = DecisionPolicy(
        long_threshold=long,
        short_threshold=long * (1.0 - gap),
        allow_short=True,
        size=size,
        kelly_fraction=kelly,
        payoff_ratio=payoff,
        vol_target=vol_target,
    )
    with np.errstate(all="ignore"):
        want = float(decide(p, policy, vol))
    got = decide_one(p, policy, vol)
    assert same(got, want)
    assert math.copysign(1.0, got) == math.copysign(1.0, want) or math.isnan(want)


def test_decide_one_needs_the_volatility_its_policy_targets() -> None:
    with pytest.raises(ValueError, match="no volatility was given"):
        decide_one(math.nan, DecisionPolicy(vol_target=0.15))
