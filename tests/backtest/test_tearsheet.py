"""The tearsheet's numbers against hand-computed values, and the files it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.backtest.metrics import sharpe
from mlalgo.backtest.tearsheet import figures, monthly_returns, rolling_sharpe, write

PNG = b"\x89PNG\r\n\x1a\n"


def test_monthly_returns_chain_from_the_previous_month_end() -> None:
    index = pd.to_datetime(["2020-01-30", "2020-01-31", "2020-02-28", "2020-03-31"], utc=True)
    equity = pd.Series([100.0, 110.0, 99.0, 108.9], index=index)
    table = monthly_returns(equity)
    assert list(table.columns) == list(range(1, 13))
    # January from the first value (100 -> 110), February 110 -> 99, March 99 -> 108.9.
    assert table.loc[2020, 1] == pytest.approx(0.10)
    assert table.loc[2020, 2] == pytest.approx(-0.10)
    assert table.loc[2020, 3] == pytest.approx(0.10)
    assert table.loc[2020, 4:].isna().all()


def test_rolling_sharpe_is_the_sharpe_of_the_trailing_window() -> None:
    rng = np.random.default_rng(1)
    equity = pd.Series(100 * np.cumprod(1 + rng.normal(0.0005, 0.01, 400)))
    rs = rolling_sharpe(equity, window=126)
    assert rs.iloc[:126].isna().all()
    r = equity.pct_change().to_numpy()
    assert rs.iloc[300] == pytest.approx(sharpe(r[175:301], 252), rel=1e-9)


def test_write_embeds_every_figure_and_leaves_no_temporary_files(tmp_path) -> None:
    index = pd.bdate_range("2019-01-01", periods=300, tz="UTC")
    rng = np.random.default_rng(2)
    strategy = pd.Series(100 * np.cumprod(1 + rng.normal(0.0004, 0.01, 300)), index=index)
    buy_hold = pd.Series(100 * np.cumprod(1 + rng.normal(0.0003, 0.012, 300)), index=index)
    importance = pd.DataFrame(rng.dirichlet(np.ones(4), size=5), columns=list("abcd"))
    figs = figures(strategy, buy_hold, rng.normal(0, 50, 40), importance, title="t")
    assert set(figs) == {
        "equity.png",
        "drawdown.png",
        "monthly_returns.png",
        "rolling_sharpe.png",
        "trade_pnl.png",
        "feature_importance.png",
    }
    summary = pd.DataFrame({"strategy": [1.0], "buy & hold": [2.0]}, index=["sharpe"])
    page = write(tmp_path / "report", "a <title>", summary, figs, {"costs": summary})
    text = page.read_text()
    assert text.count("data:image/png;base64,") == len(figs)
    assert "a &lt;title&gt;" in text and "<h2>costs</h2>" in text
    for name in figs:
        assert (tmp_path / "report" / name).read_bytes().startswith(PNG)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(
        [*figs, "tearsheet.html"]
    )


def test_walk_forward_reports_lightgbm_feature_importance(short_cfg, sample_bars) -> None:
    from mlalgo.pipeline import load_bars, research

    bars, _ = load_bars(short_cfg)
    res = research(short_cfg, bars)
    imp = res.walk_forward.importance
    assert imp is not None
    assert imp.shape == (len(res.walk_forward.folds), res.features.shape[1])
    assert list(imp.columns) == list(res.features.columns)
    assert np.allclose(imp.sum(axis=1), 1.0)
