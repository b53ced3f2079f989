"""Fixtures for the feed tests."""

from __future__ import annotations

import pandas as pd
import pytest
from live.feeds.feed_support import crypto_bars


@pytest.fixture(scope="module")
def crypto() -> pd.DataFrame:
    return crypto_bars()
