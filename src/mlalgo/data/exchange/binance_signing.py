"""Binance's door for signed (TRADE, USER_DATA) requests: API key, HMAC signature, timestamp.

The checks follow the documented rules exactly, so a client that passes here signs the way the
real exchange wants: the payload is the raw query string concatenated with the raw body (no
separator, the ``signature`` item removed), and a request is accepted only if ``timestamp <
serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``.

The replay exchange lives in two times: the wall clock of its machine (shifted by ``skew_ms``,
so a test can make the client's clock wrong) and the replay clock, which ``/api/v3/time``
reports. A timestamp is accepted against either, so a client that trusts its own clock and one
that re-synced from ``serverTime`` after a -1021 both get through.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import web

from mlalgo.data.exchange.binance import error

MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_WINDOW = re.compile(r"^[0-9]{1,5}(\.[0-9]{1,3})?$")


class BinanceError(Exception):
    """A refusal in Binance's words: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def response(self) -> web.Response:
        return error(self.code, self.msg, self.status)


def missing(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def sign(secret: str, payload: str) -> str:
    """hex(HMAC-SHA256(secret, payload)), the value of the ``signature`` parameter."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    keep, signature = [], None
    for item in raw.split("&") if raw else []:
        if item.startswith("signature="):
            signature = item.removeprefix("signature=")
        else:
            keep.append(item)
    return "&".join(keep), signature


class SignedGate:
    """Verify a signed request and return its parameters (query string wins over the body).

    With ``key=None`` any API key is accepted and signatures are not checked (the timestamp
    still is), as the Alpaca routes skip authentication without a key.
    """

    def __init__(
        self,
        key: tuple[str, str] | None,
        *,
        replay_ms: Callable[[], int],
        skew_ms: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.key, self.skew_ms, self._replay_ms, self._wall = key, skew_ms, replay_ms, wall

    def server_ms(self) -> int:
        """The server's wall clock in ms, ``skew_ms`` ahead of the machine's."""
        return int(self._wall() * 1000) + self.skew_ms

    async def verify(self, request: web.Request) -> dict[str, str]:
        raw_query = request.rel_url.raw_query_string
        raw_body = await request.text() if request.method in ("POST", "PUT", "DELETE") else ""
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))
        params.pop("signature", None)
        self._check_key(request)
        self._check_signature(raw_query, raw_body)
        self._check_time(params)
        return params

    def _check_key(self, request: web.Request) -> None:
        sent = request.headers.get("X-MBX-APIKEY", "")
        if not sent or not sent.isascii() or not sent.isprintable() or len(sent) > 256:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if self.key is not None and not hmac.compare_digest(sent, self.key[0]):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def _check_signature(self, raw_query: str, raw_body: str) -> None:
        query, sig_q = _without_signature(raw_query)
        body, sig_b = _without_signature(raw_body)
        signature = sig_q or sig_b
        if not signature:
            raise missing("signature")
        if self.key is None:
            return
        expected = sign(self.key[1], query + body)
        if not hmac.compare_digest(signature.lower(), expected):
            raise BinanceError(-1022, "Signature for this request is not valid.")

    def _check_time(self, params: dict[str, str]) -> None:
        raw = params.get("timestamp", "")
        if not raw:
            raise missing("timestamp")
        if not _DIGITS.match(raw):
            raise illegal("timestamp", "^[0-9]{1,20}$")
        window_raw = params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
        if not _WINDOW.match(window_raw):
            raise illegal("recvWindow", "^[0-9]{1,5}(\\.[0-9]{1,3})?$")
        window = float(window_raw)
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW}.")
        stamp, wall = int(raw), self.server_ms()
        if any(stamp < ref + 1000 and ref - stamp <= window for ref in (wall, self._replay_ms())):
            return
        if stamp >= wall + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the "
                               "server's time.")  # fmt: skip
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
