"""Pandas-free feeds of closed bars for the live executor: replay, Binance WebSocket, REST poll.

Every feed implements :class:`Feed`; :func:`make_feed` builds one from a kind and options.
The feeds load on first use, so a process replaying a file never imports the WebSocket and
HTTP clients (aiohttp, requests) that the network feeds need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlalgo._lazy import lazy_exports

if TYPE_CHECKING:
    from mlalgo.live.feeds.base import STAT_NAMES, Feed, GapTracker
    from mlalgo.live.feeds.binance_ws import BinanceWsFeed
    from mlalgo.live.feeds.factory import make_feed
    from mlalgo.live.feeds.replay import ReplayFeed
    from mlalgo.live.feeds.rest_poll import RestPollFeed

_HOMES = {
    "STAT_NAMES": "base",
    "Feed": "base",
    "GapTracker": "base",
    "BinanceWsFeed": "binance_ws",
    "make_feed": "factory",
    "ReplayFeed": "replay",
    "RestPollFeed": "rest_poll",
}

__all__ = [
    "STAT_NAMES",
    "BinanceWsFeed",
    "Feed",
    "GapTracker",
    "ReplayFeed",
    "RestPollFeed",
    "make_feed",
]


__getattr__ = lazy_exports(__name__, _HOMES)
