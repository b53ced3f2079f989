"""GapTracker: a forward jump is filled before the new bar; repeats and stragglers pass, counted."""

from __future__ import annotations

from mlalgo.data.bar import Bar
from mlalgo.data.http import SourceError
from mlalgo.live.feeds.base import GapTracker, new_stats

STEP = 60_000


def bar(t: int, symbol: str = "BTCUSDT") -> Bar:
    return Bar(symbol, t * STEP, 1.0, 2.0, 0.5, 1.5, 3.0)


def test_a_jump_is_filled_first_and_repeats_pass_through_counted():
    asked: list[tuple] = []

    def fetch(symbol: str, first: int, last: int | None) -> list[Bar]:
        asked.append((symbol, first // STEP, last if last is None else last // STEP))
        return [bar(t) for t in range(first // STEP, (last or 99 * STEP) // STEP + 1)]

    stats = new_stats()
    gaps = GapTracker(STEP, stats, fetch)
    out = [b.open_ms // STEP for t in (1, 2, 5, 5, 3) for b in gaps.accept(bar(t))]
    assert out == [1, 2, 3, 4, 5, 5, 3] and asked == [("BTCUSDT", 3, 4)]
    assert (stats["backfilled"], stats["duplicates"], stats["out_of_order"]) == (2, 1, 1)
    assert [b.open_ms // STEP for b in gaps.fill("BTCUSDT", 7 * STEP)] == [6, 7]
    assert gaps.fill("ETHUSDT") == []  # nothing known, nothing owed


def test_start_makes_bars_owed_and_a_failed_fetch_is_counted_not_raised():
    def fetch(symbol: str, first: int, last: int | None) -> list[Bar]:
        raise SourceError("binance: /api/v3/klines failed 7 times")

    stats = new_stats()
    gaps = GapTracker(STEP, stats, fetch)
    gaps.starts_at(["BTCUSDT"], 10 * STEP)
    assert gaps.jumps(bar(11)) and not gaps.jumps(bar(10))
    assert gaps.accept(bar(12)) == [bar(12)]  # the bar still arrives; the gap is left visible
    assert stats["errors"] == 1 and gaps.last["BTCUSDT"] == 12 * STEP
