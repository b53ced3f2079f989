"""One JSON request with the retry policy order routing needs: only idempotent calls retry.

A query (GET) may be repeated safely, so it retries timeouts, dropped connections, 5xx answers,
unreadable bodies and 429/418 rate limits (waiting the server's Retry-After). An order placement
is sent exactly once: whatever goes wrong after it leaves is :class:`Unreachable`, which the
broker turns into :class:`~mlalgo.live.broker.StatusUnknown` so the executor asks before it
sends again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlalgo.data.transport import Response, Transport, TransportError
from mlalgo.live.broker import BrokerError

log = logging.getLogger(__name__)


class Unreachable(BrokerError):
    """No usable answer: the request may or may not have been processed."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # parsed JSON; None for an empty body (a 204)


@dataclass(frozen=True, slots=True)
class Call:
    """What to send; built afresh for each attempt so a signature can carry a new timestamp."""

    path: str
    params: Mapping[str, str] | None = None
    data: str | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None


def retry_after(resp: Response, default: float = 1.0) -> float:
    """Seconds to wait from Retry-After (Binance, RFC 9110) or X-Ratelimit-Reset (Alpaca)."""
    raw = resp.headers.get("Retry-After")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            return default
    reset = resp.headers.get("X-Ratelimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return default
    return default


class JsonHttp:
    """Send JSON requests to ``base_url``; 2xx-4xx answers come back as a :class:`Reply`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_retry_after, self.sleep = max_retry_after, sleep
        self.transport = Transport(self.base_url, timeout=timeout)

    def call(self, method: str, build: Callable[[], Call], *, idempotent: bool) -> Reply:
        """Send ``build()``; retry (idempotent calls only) until an answer or out of retries."""
        attempt = 0
        while True:
            call = build()
            failure, wait = self._attempt(method, call)
            if isinstance(failure, Reply):
                return failure
            if not idempotent or attempt >= self.retries or wait > self.max_retry_after:
                raise Unreachable(f"{method} {call.path}: {failure}")
            attempt += 1
            log.warning("%s %s: %s; retry %d/%d in %.1f s", method, call.path, failure,
                        attempt, self.retries, wait)  # fmt: skip
            self.sleep(wait)

    def _attempt(self, method: str, call: Call) -> tuple[Reply | str, float]:
        """(the reply, 0) or (what went wrong, how long to wait before trying again)."""
        pause = self.backoff
        try:
            resp = self.transport.request(
                method, call.path, params=call.params, data=call.data, json=call.json,
                headers=call.headers,
            )  # fmt: skip
        except TransportError as exc:
            return f"{type(exc).__name__}: {exc}", pause
        if resp.status in (418, 429):
            wait = retry_after(resp)
            return f"HTTP {resp.status} rate limited (Retry-After {wait:g} s)", wait
        if resp.status >= 500:
            return f"HTTP {resp.status}: {resp.text[:200]}", pause
        if not resp.content:
            return Reply(resp.status, None), 0.0
        try:
            return Reply(resp.status, resp.json()), 0.0
        except ValueError:
            return f"HTTP {resp.status} with an unreadable body", pause
