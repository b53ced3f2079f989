"""A small JSON-over-HTTP client that survives what real market-data APIs do.

Retried: connection errors, timeouts, 5xx, 429/418 (waiting at least ``Retry-After``), and bodies
that are not valid JSON (a truncated response). Not retried: other 4xx, which mean the request is
wrong; they raise :class:`SourceError` with the provider's own message. Backoff is exponential
with jitter so many clients do not retry in lockstep. Header values may be
:class:`~mlalgo.secrets.Secret`; they are revealed only into the request and never appear in
errors or logs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlalgo.data.errors import SourceError
from mlalgo.data.transport import Response, Timeout, Transport, TransportError
from mlalgo.secrets import Secret

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({418, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0
    timeout: float = 10.0  # per request, seconds

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter, never shorter than the server's Retry-After."""
        base = min(self.max_backoff, self.backoff * 2**attempt)
        wait = base * rng.uniform(0.5, 1.0)
        return max(wait, retry_after or 0.0)


class HttpClient:
    """GET JSON from one base URL with retries; one per source instance."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        headers: Mapping[str, str | Secret] | None = None,
        retry: RetryPolicy | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._headers = dict(headers or {})
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._transport = Transport(self.base_url, timeout=self.retry.timeout)
        self.last_headers: Mapping[str, str] = {}

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON body of ``GET base_url + path``, after retries."""
        headers = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self._headers.items()}
        last = "no attempt"
        for attempt in range(self.retry.max_retries + 1):
            retry_after = None
            try:
                resp = self._transport.request("GET", path, params=params, headers=headers)
            except Timeout:
                last = f"timed out after {self.retry.timeout:g} s"
            except TransportError as exc:
                last = f"connection failed ({exc})"
            else:
                self.last_headers = resp.headers
                if resp.status in RETRY_STATUS:
                    retry_after = _retry_after(resp)
                    last = f"HTTP {resp.status}"
                elif resp.status >= 400:
                    raise SourceError(
                        f"{self.name}: {path} answered HTTP {resp.status}: "
                        f"{_provider_message(resp)}"
                    )
                else:
                    try:
                        return resp.json()
                    except ValueError:  # json.JSONDecodeError, or a body that is not UTF-8
                        last = "an incomplete or invalid JSON body"
            if attempt < self.retry.max_retries:
                wait = self.retry.delay(attempt, self._rng, retry_after)
                log.info("%s: %s %s; retry %d in %.2f s", self.name, path, last, attempt + 1, wait)
                self._sleep(wait)
        raise SourceError(
            f"{self.name}: {path} failed {self.retry.max_retries + 1} times (last: {last}); "
            f"check that {self.base_url} is reachable, or raise the retry limit"
        )

    def close(self) -> None:
        self._transport.close()


def _retry_after(resp: Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _provider_message(resp: Response) -> str:
    """Binance says ``{"code", "msg"}``, Alpaca ``{"message"}``; show whichever is there."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        if "msg" in body:
            return f"{body['msg']} (code {body.get('code')})"
        if "message" in body:
            return str(body["message"])
    return str(body)[:200]
