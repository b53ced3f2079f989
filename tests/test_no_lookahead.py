"""No look-ahead through the whole pipeline (invariant 2), on real bars.

Scrambling every bar after time t must leave each feature, out-of-sample prediction, target and
position at or before t unchanged. A control scrambles bar t itself and must change something at
t, so the comparison is proven able to fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import validate
from mlalgo.pipeline import Research, load_bars, research

CUTS = ("2005-08-15", "2007-03-01")


def scramble_from(bars: pd.DataFrame, cut: pd.Timestamp, *, seed: int) -> pd.DataFrame:
    """Multiply each bar at or after ``cut`` by a random factor (OHLC consistent)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    later = out.index.get_level_values("time") >= cut
    factor = rng.uniform(0.6, 1.6, size=int(later.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * factor
    out.loc[later, "volume"] = out.loc[later, "volume"].to_numpy() * rng.uniform(
        0.2, 5, later.sum()
    )
    validate(out, source="scrambled")
    return out


def upto(frame: pd.DataFrame | pd.Series, t: pd.Timestamp) -> pd.DataFrame | pd.Series:
    return frame.loc[frame.index.get_level_values("time") <= t]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, make_short_config) -> tuple[object, pd.DataFrame, Research]:
    cfg = make_short_config(tmp_path_factory.mktemp("models"))
    bars, _ = load_bars(cfg)
    return cfg, bars, research(cfg, bars)


@pytest.mark.parametrize("cut", CUTS)
def test_later_bars_change_nothing_at_or_before_t(baseline, cut: str) -> None:
    cfg, bars, base = baseline
    times = bars.index.get_level_values("time").unique()
    t = times[times.searchsorted(pd.Timestamp(cut, tz="UTC"))]
    after = times[times.searchsorted(t) + 1]

    res = research(cfg, scramble_from(bars, after, seed=7))

    pd.testing.assert_frame_equal(upto(res.features, t), upto(base.features, t))
    pd.testing.assert_series_equal(
        upto(res.walk_forward.proba, t), upto(base.walk_forward.proba, t)
    )
    pd.testing.assert_series_equal(upto(res.target, t), upto(base.target, t))
    pd.testing.assert_frame_equal(res.strategy.units.loc[:t], base.strategy.units.loc[:t])
    pd.testing.assert_series_equal(res.strategy.equity.loc[:t], base.strategy.equity.loc[:t])
    # ...while the scrambled future really did change the run after t.
    assert not res.walk_forward.proba.equals(base.walk_forward.proba)
    assert not res.strategy.equity.equals(base.strategy.equity)


def test_control_scrambling_bar_t_itself_is_detected(baseline) -> None:
    cfg, bars, base = baseline
    times = bars.index.get_level_values("time").unique()
    t = times[times.searchsorted(pd.Timestamp(CUTS[0], tz="UTC"))]

    res = research(cfg, scramble_from(bars, t, seed=7))

    at_t = res.features.index.get_level_values("time") == t
    assert not np.allclose(
        res.features.loc[at_t].to_numpy(), base.features.loc[at_t].to_numpy(), equal_nan=True
    )


def test_predictions_exist_only_for_bars_after_training_data(baseline) -> None:
    _, _, base = baseline
    folds = base.walk_forward.folds
    predicted = base.walk_forward.proba.dropna()
    times = predicted.index.get_level_values("time")

    assert times.min() >= folds["test_start"].iloc[0]
    assert (folds["train_end"] < folds["test_start"]).all()
    for fold in folds.itertuples():
        in_block = (times >= fold.test_start) & (times <= fold.test_end)
        assert in_block.sum() == fold.n_test


def test_positions_follow_decisions_one_bar_later(baseline) -> None:
    """Fills happen at the next open: the position held at bar t reflects the target of t-1."""
    _, _, base = baseline
    units = base.strategy.units
    for sym in units.columns:
        target = base.target.xs(sym, level="symbol").reindex(units.index)
        held = units[sym] != 0
        wanted_before = target.shift(1).fillna(0) != 0
        changed = (target.shift(1) != target.shift(2)) & target.shift(1).notna()
        assert (held[changed] == wanted_before[changed]).all()
        assert held.iloc[0] == 0  # nothing can be held on the first out-of-sample bar


def test_labels_are_the_only_outputs_that_read_past_t_and_only_by_their_reach(baseline) -> None:
    """Scrambling bars after t leaves features, predictions and positions at or before t alone
    (above), while labels of the last ``reach`` bars before t do change: labels, and only
    labels, look forward, exactly as far as they declare."""
    from mlalgo.labels import reach

    cfg, bars, base = baseline
    times = bars.index.get_level_values("time").unique()
    t = times[times.searchsorted(pd.Timestamp(CUTS[0], tz="UTC"))]
    after = times[times.searchsorted(t) + 1]
    res = research(cfg, scramble_from(bars, after, seed=7))
    r = reach(cfg.stages.label.horizon, cfg.stages.label.entry)
    safe = times[times.searchsorted(after) - r - 1]

    old, new = upto(base.labels["ret"], t), upto(res.labels["ret"], t)
    pd.testing.assert_series_equal(upto(new, safe), upto(old, safe))
    changed = ~np.isclose(old.to_numpy(), new.to_numpy(), equal_nan=True)
    assert changed.any(), "labels near t read bars after t"
    assert (new.index.get_level_values("time")[changed] > safe).all()
