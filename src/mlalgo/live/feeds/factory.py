"""``make_feed``: one place that turns a feed kind and options into a feed.

A table maps each kind to the options it understands, so an option given to the wrong kind is
an error that names it instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlalgo.data.intervals import interval_ms
from mlalgo.live.feeds.base import Feed
from mlalgo.secrets import Credentials

KINDS: dict[str, frozenset[str]] = {
    "replay": frozenset({"path", "start_ms", "end_ms", "pace"}),
    "binance-ws": frozenset({"base_url", "ws_url", "start_ms", "seed"}),
    "rest-poll": frozenset({"base_url", "start_ms", "provider", "key", "poll_every", "seed"}),
}


def make_feed(
    kind: str,
    *,
    symbols: Sequence[str],
    interval: str,
    base_url: str | None = None,
    ws_url: str | None = None,
    path: str | Path | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    pace: float | None = None,
    provider: str | None = None,
    key: Credentials | tuple[str, str] | None = None,
    poll_every: float | None = None,
    seed: int | None = None,
) -> Feed:
    """A feed of ``kind`` (``replay``, ``binance-ws`` or ``rest-poll``).

    Raises ``ValueError`` naming the bad kind, a missing option, or an option the kind does not
    use. ``base_url``/``ws_url`` default to the real Binance (or Alpaca) hosts.
    """
    if kind not in KINDS:
        raise ValueError(f"feed kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    options = dict(base_url=base_url, ws_url=ws_url, path=path, start_ms=start_ms,
                   end_ms=end_ms, pace=pace, provider=provider, key=key, poll_every=poll_every,
                   seed=seed)  # fmt: skip
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - KINDS[kind])
    if extra:
        raise ValueError(
            f"feed kind {kind!r} does not use {', '.join(extra)}; "
            f"its options are {', '.join(sorted(KINDS[kind]))}"
        )
    if isinstance(symbols, str) or not symbols:
        raise ValueError(f"symbols must be a non-empty list of symbols, got {symbols!r}")
    interval_ms(interval)  # a clear error for an unknown interval
    if kind == "replay":
        if path is None:
            raise ValueError("feed kind 'replay' needs path= (a bar CSV file)")
        from mlalgo.live.feeds.replay import ReplayFeed

        return ReplayFeed(path, symbols, interval=interval, **_without(given, "path"))
    if kind == "binance-ws":  # the network feeds load aiohttp and requests: only when used
        from mlalgo.live.feeds.binance_ws import BinanceWsFeed

        return BinanceWsFeed(symbols, interval, **given)
    from mlalgo.live.feeds.rest_poll import RestPollFeed

    return RestPollFeed(symbols, interval, **given)


def _without(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in names}
