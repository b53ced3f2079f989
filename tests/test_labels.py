"""Forward-return labels: exactly what a position decided at bar t earns, with its end time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlalgo.bars import make_bars
from mlalgo.labels import forward_return, make_labels

OPEN = np.array([10.0, 11.0, 12.0, 9.0, 15.0, 16.0])
CLOSE = np.array([10.5, 11.5, 12.5, 10.0, 14.0, 20.0])


def test_next_open_entry_enters_at_the_next_open_and_exits_horizon_bars_later() -> None:
    ret, end = forward_return(OPEN, CLOSE, horizon=2, entry="next_open")

    # ret[t] = open[t + 3] / open[t + 1] - 1, end index t + 3
    expected = [9 / 11 - 1, 15 / 12 - 1, 16 / 9 - 1, np.nan, np.nan, np.nan]
    np.testing.assert_allclose(ret, expected, rtol=1e-15)
    np.testing.assert_array_equal(end, [3, 4, 5, -1, -1, -1])


def test_next_open_entry_with_horizon_one() -> None:
    ret, end = forward_return(OPEN, CLOSE, horizon=1)

    expected = [12 / 11 - 1, 9 / 12 - 1, 15 / 9 - 1, 16 / 15 - 1, np.nan, np.nan]
    np.testing.assert_allclose(ret, expected, rtol=1e-15)
    np.testing.assert_array_equal(end, [2, 3, 4, 5, -1, -1])


def test_close_entry_is_close_to_close_over_the_horizon() -> None:
    ret, end = forward_return(OPEN, CLOSE, horizon=2, entry="close")

    expected = [12.5 / 10.5 - 1, 10 / 11.5 - 1, 14 / 12.5 - 1, 20 / 10 - 1, np.nan, np.nan]
    np.testing.assert_allclose(ret, expected, rtol=1e-15)
    np.testing.assert_array_equal(end, [2, 3, 4, 5, -1, -1])


def test_a_horizon_longer_than_the_data_gives_no_labels() -> None:
    ret, end = forward_return(OPEN, CLOSE, horizon=6, entry="close")

    assert np.isnan(ret).all()
    assert (end == -1).all()


def test_forward_return_does_not_write_to_its_inputs() -> None:
    open_, close = OPEN.copy(), CLOSE.copy()

    forward_return(open_, close, horizon=1)

    np.testing.assert_array_equal(open_, OPEN)
    np.testing.assert_array_equal(close, CLOSE)


@pytest.mark.parametrize("horizon", [0, -1])
def test_a_horizon_below_one_bar_is_refused(horizon: int) -> None:
    with pytest.raises(ValueError, match="horizon"):
        forward_return(OPEN, CLOSE, horizon=horizon)


def two_symbol_bars() -> pd.DataFrame:
    days = pd.date_range("2022-01-03", periods=len(OPEN), freq="B", tz="UTC")
    frames = []
    for symbol, scale in (("AAA", 1.0), ("BBB", 3.0)):
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "time": days,
                    "open": OPEN * scale,
                    "high": np.maximum(OPEN, CLOSE) * scale + 1,
                    "low": np.minimum(OPEN, CLOSE) * scale - 1,
                    "close": CLOSE * scale,
                    "volume": 100.0,
                }
            )
        )
    return make_bars(pd.concat(frames))


def test_make_labels_per_symbol_never_crosses_symbols() -> None:
    bars = two_symbol_bars()

    labels = make_labels(bars, horizon=2)

    assert labels.index.equals(bars.index)
    for symbol in ("AAA", "BBB"):
        part = labels.xs(symbol, level="symbol")
        ret, _ = forward_return(OPEN, CLOSE, horizon=2)
        np.testing.assert_allclose(part["ret"].to_numpy(), ret, rtol=1e-15)
        # the last 1 + horizon bars of each symbol have no label, not one from the next symbol
        assert part["ret"].iloc[-3:].isna().all()
        assert part["t1"].iloc[-3:].isna().all()


def test_make_labels_t1_is_the_time_of_the_end_bar() -> None:
    bars = two_symbol_bars()
    times = bars.xs("AAA", level="symbol").index

    next_open = make_labels(bars, horizon=2).xs("AAA", level="symbol")
    close = make_labels(bars, horizon=2, entry="close").xs("AAA", level="symbol")

    assert list(next_open["t1"].iloc[:3]) == list(times[3:6])
    assert list(close["t1"].iloc[:4]) == list(times[2:6])
    assert close["t1"].iloc[4:].isna().all()
    assert str(next_open["t1"].dt.tz) == "UTC"


def test_make_labels_y_is_one_for_up_zero_otherwise_and_nan_without_a_label() -> None:
    bars = two_symbol_bars()

    labels = make_labels(bars, horizon=1)

    ret = labels["ret"].to_numpy()
    y = labels["y"].to_numpy()
    has = ~np.isnan(ret)
    np.testing.assert_array_equal(np.isnan(y), ~has)
    np.testing.assert_array_equal(y[has], (ret[has] > 0).astype(float))
    assert set(np.unique(y[has])) == {0.0, 1.0}  # both classes occur, so the check can fail


def test_make_labels_on_the_real_sample_ends_each_label_horizon_bars_after_entry(
    sample_bars: pd.DataFrame,
) -> None:
    bars = sample_bars.loc[["AAPL", "MSFT"]]

    labels = make_labels(bars, horizon=5)

    for symbol in ("AAPL", "MSFT"):
        part = labels.xs(symbol, level="symbol")
        times = part.index
        opens = bars.xs(symbol, level="symbol")["open"].to_numpy()
        assert list(part["t1"].iloc[:-6]) == list(times[6:])
        assert part["t1"].iloc[-6:].isna().all()
        np.testing.assert_allclose(
            part["ret"].to_numpy()[:-6], opens[6:] / opens[1:-5] - 1, rtol=1e-14
        )
