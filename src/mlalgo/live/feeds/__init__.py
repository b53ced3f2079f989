"""Pandas-free feeds of closed bars for the live executor: replay, Binance WebSocket, REST poll.

Every feed implements :class:`Feed`; :func:`make_feed` builds one from a kind and options.
"""

from mlalgo.live.feeds.base import STAT_NAMES, Feed, GapTracker
from mlalgo.live.feeds.binance_ws import BinanceWsFeed
from mlalgo.live.feeds.factory import make_feed
from mlalgo.live.feeds.replay import ReplayFeed
from mlalgo.live.feeds.rest_poll import RestPollFeed

__all__ = [
    "STAT_NAMES",
    "BinanceWsFeed",
    "Feed",
    "GapTracker",
    "ReplayFeed",
    "RestPollFeed",
    "make_feed",
]
