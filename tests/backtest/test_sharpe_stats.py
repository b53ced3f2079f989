"""Tests for the probabilistic and deflated Sharpe ratios: hand values, the DSR paper's example,
properties and edge cases. All Sharpe ratios are per period."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlalgo.backtest import sharpe_stats as ss
from mlalgo.backtest.metrics import sharpe


def phi(z: float) -> float:
    """Standard normal CDF, scipy-free."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# r = [0, 0, 0, 4]: mean 1, deviations (-1, -1, -1, 3), sum of squares 12.
# std (ddof=1) = sqrt(12 / 3) = 2 -> SR = 1 / 2.
# Population moments: m2 = 12/4 = 3, m3 = (-3 + 27)/4 = 6, m4 = (3 + 81)/4 = 21.
# skew = 6 / 3**1.5 = 2/sqrt(3); kurt = 21 / 9 = 7/3.
# 1 - skew*SR + (kurt - 1)/4 * SR**2 = 1 - 1/sqrt(3) + (4/3)/4 * 1/4 = 13/12 - 1/sqrt(3).
# z = (SR - SR*) * sqrt(n - 1) / sqrt(...) = (1/2 - SR*) * sqrt(3) / sqrt(13/12 - 1/sqrt(3)).
HAND = np.array([0.0, 0.0, 0.0, 4.0])
HAND_DEN = math.sqrt(13 / 12 - 1 / math.sqrt(3))


def test_psr_hand_computed_case() -> None:
    assert ss.probabilistic_sharpe_ratio(HAND) == pytest.approx(
        phi(0.5 * math.sqrt(3) / HAND_DEN), abs=1e-12
    )
    assert ss.probabilistic_sharpe_ratio(HAND, 0.25) == pytest.approx(
        phi(0.25 * math.sqrt(3) / HAND_DEN), abs=1e-12
    )
    # Anchored to a number too: z = 1.21748..., Phi(z) = 0.88828...
    assert ss.probabilistic_sharpe_ratio(HAND) == pytest.approx(0.888, abs=1e-3)


def test_dsr_paper_worked_example() -> None:
    # Bailey & López de Prado (2014), numerical example: N = 100 trials, annualised variance of
    # the trial Sharpes 1/2, best annualised SR 2.5, T = 1250 daily observations (250 per year),
    # skew -3, kurtosis 10 -> E[max SR] ~ 0.1132 per day, DSR ~ 0.9004.
    sr0 = ss.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = ss._psr(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_two_trials_by_hand() -> None:
    # N = 2: Phi^-1(1 - 1/2) = 0, so E[max] = sqrt(V) * gamma * Phi^-1(1 - 1/(2e)).
    # 1 - 1/(2e) = 0.816060...; Phi(0.90045...) equals it, checked here with erf only.
    value = ss.expected_max_sharpe(2, 4.0)
    q = value / (2.0 * np.euler_gamma)
    assert phi(q) == pytest.approx(1.0 - 1.0 / (2.0 * math.e), abs=1e-12)
    assert q == pytest.approx(0.9005, abs=1e-3)


def test_expected_max_sharpe_tracks_the_exact_order_statistic() -> None:
    # E[max of N standard normals] = int x N phi(x) Phi(x)^(N-1) dx, by quadrature.
    x = np.linspace(-12.0, 12.0, 200_001)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    cdf = np.array([phi(v) for v in x])
    for n, rel in [(10, 0.03), (100, 0.01), (1000, 0.005)]:
        exact = float(np.trapezoid(x * n * pdf * cdf ** (n - 1), x))
        assert ss.expected_max_sharpe(n, 1.0) == pytest.approx(exact, rel=rel)
    # Scales with the standard deviation of the trial Sharpes.
    assert ss.expected_max_sharpe(50, 0.25) == pytest.approx(0.5 * ss.expected_max_sharpe(50, 1))


def test_against_scipy_if_available() -> None:
    stats = pytest.importorskip("scipy.stats")
    r = np.random.default_rng(7).standard_t(5, 300) * 0.01 + 0.001
    sr = np.mean(r) / np.std(r, ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    z = (sr - 0.02) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert ss.probabilistic_sharpe_ratio(r, 0.02) == pytest.approx(stats.norm.cdf(z), abs=1e-12)
    g = np.euler_gamma
    expected = 0.3 * (
        (1 - g) * stats.norm.ppf(1 - 1 / 37) + g * stats.norm.ppf(1 - 1 / (37 * np.e))
    )
    assert ss.expected_max_sharpe(37, 0.09) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("reps", [1, 5, 40])
@pytest.mark.parametrize("mu", [0.05, 0.3, -0.2])
def test_normal_moments_reduce_to_textbook_formula(reps: int, mu: float) -> None:
    # 0 (x4), +1, -1: skew exactly 0; m2 = m4 = 1/3 -> kurtosis 3, as for a normal.
    r = np.tile(mu + np.array([0.0, 0.0, 0.0, 0.0, 1.0, -1.0]), reps)
    n = len(r)
    sr = mu / math.sqrt((2 * reps) / (n - 1))
    for bench in (0.0, 0.1):
        z = (sr - bench) * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2)
        assert ss.probabilistic_sharpe_ratio(r, bench) == pytest.approx(phi(z), abs=1e-12)


def test_psr_is_one_half_at_the_benchmark() -> None:
    r = np.random.default_rng(1).normal(0.001, 0.01, 500)
    assert ss.probabilistic_sharpe_ratio(r, sharpe(r, ppy=1)) == pytest.approx(0.5, abs=1e-12)


samples = st.lists(
    st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=2, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(samples, st.floats(-0.5, 0.5))
def test_psr_is_a_probability(values: list[float], bench: float) -> None:
    p = ss.probabilistic_sharpe_ratio(values, bench)
    assert math.isnan(p) or 0.0 <= p <= 1.0


@settings(max_examples=150, deadline=None)
@given(samples, st.floats(-1.0, 1.0), st.floats(1e-3, 1.0))
def test_psr_increases_with_sharpe(values: list[float], a: float, step: float) -> None:
    # A symmetric sample (skew 0) shifted up keeps its spread and raises SR; with skew 0 and a
    # zero benchmark the PSR is monotone in SR (see the module notes for the skewed caveat).
    x = np.asarray(values)
    sym = np.concatenate([x, -x])
    std = float(np.std(sym, ddof=1))
    assume(std > 1e-6)
    lo = ss.probabilistic_sharpe_ratio(sym + a * std)
    hi = ss.probabilistic_sharpe_ratio(sym + (a + step) * std)
    assert hi >= lo - 1e-12


@settings(max_examples=100, deadline=None)
@given(samples, st.floats(0.01, 0.5), st.integers(1, 6))
def test_psr_increases_with_sample_length(values: list[float], edge: float, reps: int) -> None:
    x = np.asarray(values)
    sym = np.concatenate([x, -x])
    std = float(np.std(sym, ddof=1))
    assume(std > 1e-6)
    r = sym + edge * std  # positive SR above the zero benchmark
    shorter = ss.probabilistic_sharpe_ratio(np.tile(r, reps))
    longer = ss.probabilistic_sharpe_ratio(np.tile(r, reps + 1))
    assert longer >= shorter - 1e-12
    assert longer > 0.5


@settings(max_examples=150, deadline=None)
@given(samples, st.integers(2, 10_000), st.floats(1e-8, 1.0))
def test_dsr_never_exceeds_psr_against_zero(
    values: list[float], n_trials: int, variance: float
) -> None:
    psr = ss.probabilistic_sharpe_ratio(values)
    assume(not math.isnan(psr))
    assert ss.expected_max_sharpe(n_trials, variance) > 0.0
    assert ss.deflated_sharpe_ratio(values, n_trials, variance) <= psr


def test_dsr_decreases_as_trials_grow() -> None:
    r = np.random.default_rng(3).normal(0.002, 0.01, 750)
    ns = [1, 2, 3, 5, 10, 30, 100, 1000, 10_000]
    bench = [ss.expected_max_sharpe(n, 0.003) for n in ns]
    dsr = [ss.deflated_sharpe_ratio(r, n, 0.003) for n in ns]
    assert np.all(np.diff(bench) > 0)
    assert np.all(np.diff(dsr) < 0)


def test_single_trial_is_plain_psr() -> None:
    r = np.random.default_rng(5).normal(0.001, 0.02, 100)
    psr = ss.probabilistic_sharpe_ratio(r)
    assert ss.expected_max_sharpe(1, 0.7) == 0.0
    assert ss.deflated_sharpe_ratio(r, 1, 0.7) == psr
    assert ss.deflated_sharpe_ratio_from_trials(r, [sharpe(r, ppy=1)]) == psr
    # No dispersion among the trials: nothing to deflate either.
    assert ss.deflated_sharpe_ratio(r, 50, 0.0) == psr


def test_from_trials_uses_count_and_sample_variance() -> None:
    r = np.random.default_rng(11).normal(0.003, 0.01, 400)
    trials = np.array([0.05, -0.02, 0.11, 0.01, sharpe(r, ppy=1)])
    expected = ss.deflated_sharpe_ratio(r, 5, float(np.var(trials, ddof=1)))
    assert ss.deflated_sharpe_ratio_from_trials(r, trials) == expected
    assert expected < ss.probabilistic_sharpe_ratio(r)


@pytest.mark.parametrize(
    "returns", [[], [0.01], [0.02, 0.02, 0.02], [0.01, float("nan"), 0.02], [0.0, np.inf]]
)
def test_undefined_inputs_give_nan(returns: list[float]) -> None:
    assert math.isnan(ss.probabilistic_sharpe_ratio(returns))
    assert math.isnan(ss.deflated_sharpe_ratio(returns, 10, 0.01))
    assert math.isnan(ss.deflated_sharpe_ratio_from_trials(returns, [0.1, 0.2]))


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="1-D"):
        ss.probabilistic_sharpe_ratio(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_trials"):
        ss.expected_max_sharpe(0, 0.1)
    with pytest.raises(ValueError, match="sr_variance"):
        ss.expected_max_sharpe(5, -0.1)
    with pytest.raises(ValueError, match="sr_variance"):
        ss.expected_max_sharpe(5, math.nan)
    with pytest.raises(TypeError):
        ss.expected_max_sharpe(2.5, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        ss.deflated_sharpe_ratio_from_trials(HAND, [])
    with pytest.raises(ValueError, match="finite"):
        ss.deflated_sharpe_ratio_from_trials(HAND, [0.1, math.nan])
