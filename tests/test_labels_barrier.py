"""Dead zones, triple barriers and meta-labels; and every label reads exactly its declared reach."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlalgo.labels import (
    BARRIER_PROFIT,
    BARRIER_STOP,
    BARRIER_VERTICAL,
    forward_return,
    make_labels,
    meta_labels,
    reach,
    sign_with_dead_zone,
    triple_barrier,
)


def test_dead_zone_leaves_small_moves_unlabelled_inclusive() -> None:
    ret = np.array([0.02, 0.01, 0.0, -0.01, -0.03, np.nan])

    out = sign_with_dead_zone(ret, 0.01)

    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, 0.0, -1.0, np.nan])
    np.testing.assert_array_equal(sign_with_dead_zone(ret), [1, 1, 0, -1, -1, np.nan])
    with pytest.raises(ValueError, match="dead_zone"):
        sign_with_dead_zone(ret, -0.1)


# Five bars; entry at open[1] = 100 with next_open; vol 1 % per bar, horizon 4 -> barriers at
# 100 * (1 +- 0.01 * sqrt(4)) = 98 and 102.
OPEN = np.array([99.0, 100.0, 100.5, 101.0, 101.5, 101.0])
VOL = np.full(6, 0.01)


def barrier(high, low, close=None, open_=OPEN, horizon=4, **kw):
    close = np.asarray(close if close is not None else open_, dtype=float)
    return triple_barrier(
        open_,
        np.asarray(high, float),
        np.asarray(low, float),
        close,
        horizon,
        vol=VOL[: len(open_)],
        **kw,
    )


def test_profit_take_touched_first_exits_at_the_barrier() -> None:
    res = barrier(high=[99, 100.8, 101, 102.5, 103, 103], low=[99, 99.5, 100, 100.5, 101, 101])

    assert res.barrier[0] == BARRIER_PROFIT and res.label[0] == 1.0
    assert res.end[0] == 3  # bar 3's high 102.5 reaches 102
    assert res.ret[0] == pytest.approx(0.02)


def test_stop_loss_touched_first_exits_at_the_barrier() -> None:
    res = barrier(high=[99, 100.8, 101, 101.5, 101.9, 101.9], low=[99, 99.5, 97.9, 100, 100, 100])

    assert res.barrier[0] == BARRIER_STOP and res.label[0] == -1.0
    assert res.end[0] == 2 and res.ret[0] == pytest.approx(-0.02)


def test_a_bar_spanning_both_barriers_counts_as_a_stop() -> None:
    res = barrier(high=[99, 100.8, 102.5, 101, 101, 101], low=[99, 99.5, 97.5, 100, 100, 100])

    assert res.barrier[0] == BARRIER_STOP and res.end[0] == 2


def test_a_gap_through_a_barrier_exits_at_the_open() -> None:
    open_ = np.array([99.0, 100.0, 100.5, 96.0, 96.5, 97.0])
    res = barrier(
        high=[99, 100.8, 101, 96.5, 97, 97], low=[99, 99.5, 100, 95.5, 96, 96], open_=open_
    )

    assert res.barrier[0] == BARRIER_STOP and res.end[0] == 3
    assert res.ret[0] == pytest.approx(96 / 100 - 1)


def test_no_touch_closes_at_the_vertical_barrier_with_the_sign_of_the_return() -> None:
    close = [99, 100.2, 100.4, 100.6, 100.9, 101]
    res = barrier(
        high=[99, 101, 101, 101, 101, 101], low=[99, 99.5, 99.5, 99.5, 99.5, 99.5], close=close
    )

    assert res.barrier[0] == BARRIER_VERTICAL and res.end[0] == 5
    assert res.ret[0] == pytest.approx(101 / 100 - 1) and res.label[0] == 1.0
    assert np.isnan(res.label[1]) and res.end[1] == -1  # its window runs past the data


def test_close_entry_starts_at_the_signal_bar_close() -> None:
    close = np.array([100.0, 100.5, 101.0, 101.5, 102.5, 103.0])
    res = barrier(high=close + 0.1, low=close - 0.1, close=close, open_=close, entry="close")

    assert res.barrier[0] == BARRIER_PROFIT and res.end[0] == 4  # high 102.6 >= 102


def test_no_volatility_yet_means_no_label() -> None:
    vol = VOL.copy()
    vol[0] = np.nan

    res = triple_barrier(OPEN, OPEN + 1, OPEN - 1, OPEN, 4, vol=vol)

    assert np.isnan(res.label[0]) and res.end[0] == -1


def test_meta_labels_say_whether_following_the_primary_side_paid() -> None:
    side = np.array([1, 1, -1, -1, 0, np.nan])
    ret = np.array([0.02, -0.01, -0.03, 0.01, 0.05, 0.01])

    np.testing.assert_array_equal(meta_labels(side, ret), [1, 0, 1, 0, np.nan, np.nan])


def test_triple_barrier_on_the_real_sample(sample_bars) -> None:
    bars = sample_bars.loc[["AAPL", "MSFT"]]

    labels = make_labels(bars, horizon=10, kind="triple_barrier", profit_take=1.0, stop_loss=1.0)

    done = labels["barrier"] > -2
    assert set(labels.loc[done, "barrier"]) == {-1, 0, 1}
    assert (labels.loc[done, "y"].isna() == (labels.loc[done, "label"] == 0)).all()
    times = labels.index.get_level_values("time")
    assert (labels.loc[done, "t1"] > times[done]).all()
    # no event ends later than its reach: entry at the next open plus 10 bars
    for _, group in labels.groupby(level="symbol"):
        pos = {t: i for i, t in enumerate(group.index.get_level_values("time"))}
        ends = [
            pos[t1] - pos[t]
            for t, t1 in zip(group.index.get_level_values("time"), group["t1"], strict=True)
            if not pd_isna(t1)
        ]
        assert max(ends) <= reach(10) and min(ends) >= 1


def pd_isna(x) -> bool:
    return x is None or x != x  # NaT != NaT


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    n=st.integers(30, 80),
    horizon=st.integers(1, 6),
    kind=st.sampled_from(["fwd", "tb"]),
    entry=st.sampled_from(["next_open", "close"]),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_a_label_reads_exactly_its_declared_reach(n, horizon, kind, entry, seed, data) -> None:
    """Changing bar s moves labels only at t in [s - reach, s]: labels read no further ahead."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    vol = np.full(n, 0.01)
    s = data.draw(st.integers(1, n - 1))

    def labels(o, h, lo, c):
        if kind == "fwd":
            return forward_return(o, c, horizon, entry)[0]
        return triple_barrier(o, h, lo, c, horizon, vol=vol, entry=entry).ret

    before = labels(open_, high, low, close)
    scaled = [a.copy() for a in (open_, high, low, close)]
    for a in scaled:
        a[s] *= 1.3
    after = labels(*scaled)

    r = reach(horizon, entry)
    same = np.isclose(before, after, equal_nan=True, rtol=0, atol=0)
    assert same[: max(s - r, 0)].all(), "a label read past its reach"
    assert same[s + 1 :].all(), "a label read the past of its own entry"
