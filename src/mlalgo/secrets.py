"""API keys: loaded from the environment or a private file, and never shown.

A :class:`Secret` prints as ``****`` in every repr, str, f-string and log line, refuses to be
pickled, and registers its value so :class:`RedactingFilter` can blank it from any log record
that still carries it (an exception message quoting a header, say). Configs and MLflow params
only ever hold the *path* of a credentials file, never a key.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MASK = "****"

_known: set[str] = set()
_known_lock = threading.Lock()

# Environment variables per provider: (key id, secret), the providers' own names first.
ENV_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "alpaca": (
        ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"),
        ("MLALGO_ALPACA_KEY", "MLALGO_ALPACA_SECRET"),
    ),
    "binance": (
        ("BINANCE_API_KEY", "BINANCE_API_SECRET"),
        ("MLALGO_BINANCE_KEY", "MLALGO_BINANCE_SECRET"),
    ),
}


class SecretsError(ValueError):
    """Credentials that cannot be used; the message says how to provide them safely."""


class Secret:
    """A string that does not print."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise SecretsError("a secret must be a non-empty string")
        self._value = value
        if len(value) >= 4:
            with _known_lock:
                _known.add(value)

    def reveal(self) -> str:
        """The value, for the one place that must send it (an HTTP header)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, repr=False)
class Credentials:
    provider: str
    key_id: Secret
    secret: Secret

    def __repr__(self) -> str:
        return f"Credentials(provider={self.provider!r}, key_id={MASK}, secret={MASK})"


def load_credentials(
    provider: str, *, file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from ``file`` (YAML ``{provider: {key_id, secret}}``, mode 0600) or the env.

    The file wins when given; otherwise the provider's environment variables are read.
    """
    env = os.environ if env is None else env
    if file is not None:
        return _from_file(provider, Path(file))
    for key_name, secret_name in ENV_NAMES.get(provider, ()):
        if env.get(key_name) and env.get(secret_name):
            return Credentials(provider, Secret(env[key_name]), Secret(env[secret_name]))
    names = " and ".join(f"{k}/{s}" for k, s in ENV_NAMES.get(provider, ()))
    raise SecretsError(
        f"{provider}: no API key; set {names or 'the provider variables'} in the environment, "
        "or pass --credentials FILE (YAML, chmod 600)"
    )


def _from_file(provider: str, path: Path) -> Credentials:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretsError(f"{path}: no such credentials file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(
            f"{path}: permissions {stat.filemode(mode)} let others read your API keys; "
            f"run `chmod 600 {path}`"
        )
    import yaml  # here, not at the top: the live process reads a credentials file at most once

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise SecretsError(f"{path}: not valid YAML") from None  # no excerpt: it may hold a key
    entry = data.get(provider) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or not entry.get("key_id") or not entry.get("secret"):
        raise SecretsError(f"{path}: expected `{provider}: {{key_id: ..., secret: ...}}`")
    return Credentials(provider, Secret(str(entry["key_id"])), Secret(str(entry["secret"])))


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by the mask."""
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Blank known secrets from a record's message and arguments before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of ``logger`` (the root logger by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
