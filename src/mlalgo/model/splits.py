"""Walk-forward splits that purge every training label reaching into the test block.

Samples are rows at times ``times`` whose labels end at ``t1`` (several symbols may share a time).
The calendar is the sorted set of distinct times. Test blocks of ``step`` calendar bars follow an
initial ``min_train`` bars; a training row must both start before the block and have its whole
label window end before the block starts. Without that purge a model trained on yesterday's
5-day label has seen 4 days of the test block (the leak behind many in-sample "edges").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # row positions
    test: np.ndarray
    test_start: np.datetime64
    test_end: np.datetime64


class PurgedWalkForward:
    """Expanding (or rolling) train window, test blocks stepping forward, purge by ``t1``.

    Parameters
    ----------
    min_train : calendar bars before the first test block.
    step : calendar bars per test block; the model is retrained once per block.
    window : ``"expanding"`` keeps all history; ``"rolling"`` keeps the last ``max_train`` bars.
    max_train : length of the rolling window in calendar bars.
    """

    def __init__(
        self,
        min_train: int = 504,
        step: int = 63,
        window: Literal["expanding", "rolling"] = "expanding",
        max_train: int | None = None,
    ) -> None:
        self.min_train = min_train
        self.step = step
        self.window = window
        self.max_train = max_train

    def folds(self, times: np.ndarray, t1: np.ndarray) -> Iterator[Fold]:
        """Yield folds over rows; rows with no label end (NaT) are never trained on."""
        self._check()
        times = np.asarray(times, dtype="datetime64[ns]")
        t1 = np.asarray(t1, dtype="datetime64[ns]")
        calendar = np.unique(times)
        if len(calendar) <= self.min_train:
            raise ValueError(
                f"{len(calendar)} bars leave nothing to test after min_train={self.min_train}; "
                "lower stages.backtest.min_train_bars or fetch a longer range"
            )
        labelled = ~np.isnat(t1)
        for k, start in enumerate(range(self.min_train, len(calendar), self.step)):
            block = calendar[start : start + self.step]
            first = start - self.max_train if self.window == "rolling" and self.max_train else 0
            lo = calendar[max(first, 0)]
            train_mask = labelled & (times >= lo) & (times < block[0]) & (t1 < block[0])
            test_mask = (times >= block[0]) & (times <= block[-1])
            yield Fold(
                k, np.flatnonzero(train_mask), np.flatnonzero(test_mask), block[0], block[-1]
            )

    def split(self, times: np.ndarray, t1: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(train, test)`` row positions per fold, as scikit-learn splitters yield them."""
        for fold in self.folds(times, t1):
            yield fold.train, fold.test

    def _check(self) -> None:
        if self.step < 1 or self.min_train < 1:
            raise ValueError(f"step and min_train must be >= 1, got {self.step}, {self.min_train}")
        if self.window not in ("expanding", "rolling"):
            raise ValueError(f"window must be 'expanding' or 'rolling', got {self.window!r}")
        if self.window == "rolling" and not self.max_train:
            raise ValueError("a rolling window needs max_train (stages.backtest.max_train_bars)")
