"""HTTP/1.1 over the standard library's ``http.client``: one kept-alive connection, timeouts,
and nothing else.

Motivation: the REST clients of the sources and the brokers need a request, an answer and a
clear failure; their retry rules are their own (:mod:`mlalgo.data.http`,
:mod:`mlalgo.live.brokers.rest`). ``requests`` adds a fifth of a second to the start of every
live process for features they do not use, and a restarted executor has a second to decide.

A request is sent once. A kept-alive connection the server has closed while idle is noticed
before it is reused (its socket reads as closed) and replaced; a failure after the request has
left is raised, never retried here, so an order placement cannot go out twice from this layer.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import select
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urlsplit


class TransportError(OSError):
    """No usable answer: refused, reset, timed out, or a body cut short."""


class Timeout(TransportError):
    """The server did not answer within the timeout."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Message  # case-insensitive ``get``
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The decoded body; ``ValueError`` (``json.JSONDecodeError``) when it is not JSON."""
        return jsonlib.loads(self.content)


class Transport:
    """Requests to one base URL (``http`` or ``https``) over one kept-alive connection.

    Not thread-safe: one transport per thread that sends (each client owns one).
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole answer (any status)."""
        target = self._prefix + path
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        body: bytes | None = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        conn = self._connection(timeout)
        try:
            conn.request(method, target, body=body, headers=sent)
            resp = conn.getresponse()
            content = resp.read()
        except TimeoutError as exc:
            self.close()
            raise Timeout(f"no answer within {conn.timeout:g} s") from exc
        except http.client.IncompleteRead as exc:
            self.close()
            raise TransportError(f"the body was cut short ({len(exc.partial)} bytes)") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        if resp.will_close:
            self.close()
        return Response(resp.status, resp.headers, content)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and _closed_by_peer(conn):
            self.close()
            conn = None
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = kind(self._host, self._port, timeout=self.timeout)
        wanted = self.timeout if timeout is None else timeout
        conn.timeout = wanted
        if conn.sock is not None:
            conn.sock.settimeout(wanted)
        return conn


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that reads as ready has been closed (or sent junk): either
    way it must not carry the next request."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
