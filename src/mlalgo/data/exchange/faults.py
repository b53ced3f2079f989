"""What can go wrong on the wire, as data: the fault spec of the replay exchange.

A network adapter is only as good as the failures it has survived. The replay exchange injects
them on purpose, at given rates, drawn from a seeded generator so a failing run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

REST_KINDS: tuple[str, ...] = ("429", "5xx", "timeout", "truncate", "lost")
WS_KINDS: tuple[str, ...] = ("drop", "duplicate", "reorder", "malformed", "corrupt")
KINDS: tuple[str, ...] = REST_KINDS + WS_KINDS
# Asked for by name only, never by ``all=R``/``uniform``: "lost" places orders the client does
# not know about; "malformed" and "corrupt" replace a closed bar, which then reaches the client
# only over REST.
BY_NAME: tuple[str, ...] = ("lost", "malformed", "corrupt")
BLANKET_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in BY_NAME)
_SETTINGS: dict[str, type] = {"retry_after": int, "timeout_delay": float, "seed": int}
VALID_NAMES: tuple[str, ...] = (*KINDS, "all", *_SETTINGS)


def _field(kind: str) -> str:
    return f"rate_{kind}"


@dataclass(frozen=True)
class FaultSpec:
    """Rates (0..1) of each fault kind, and how the faults behave.

    REST kinds are drawn once per request; WebSocket kinds once per final (``x=true``) kline.
    ``retry_after`` is the Retry-After of a 429 (whole seconds, as HTTP sends it);
    ``timeout_delay`` is how long a "timeout" stalls before it answers correctly.
    "5xx" answers before the request is processed; "lost" processes it (an order is placed)
    and then answers a 5xx or drops the connection, so the client cannot know what happened.
    On the WebSocket, "malformed" sends a cut-off frame instead of a final kline and
    "corrupt" sends the final kline with broken values (its high below its low); either way the
    true bar is then only on REST. The fields added last keep positional construction's meaning.
    """

    rate_429: float = 0
    rate_5xx: float = 0
    rate_timeout: float = 0
    rate_truncate: float = 0
    rate_drop: float = 0
    rate_duplicate: float = 0
    rate_reorder: float = 0
    retry_after: int = 1
    timeout_delay: float = 5.0
    seed: int = 0
    rate_lost: float = 0
    rate_malformed: float = 0
    rate_corrupt: float = 0

    def __post_init__(self) -> None:
        for kind in KINDS:
            rate = getattr(self, _field(kind))
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate {kind}={rate} is outside [0, 1]")
        if self.retry_after < 0 or self.timeout_delay < 0:
            raise ValueError("retry_after and timeout_delay must be >= 0")

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``"429=0.05,5xx=0.05,drop=0.01,retry_after=0,seed=7"``; ``"none"``/``""`` = none.

        ``all=R`` sets every rate but those of :data:`BY_NAME` to R (later items override it).
        """
        text = text.strip()
        if text.lower() in ("", "none"):
            return cls()
        values: dict[str, float | int] = {}
        for item in (part.strip() for part in text.split(",")):
            if item:
                values.update(_parse_item(item))
        rate_all = values.pop("all", None)
        if rate_all is not None:
            values = {_field(k): rate_all for k in BLANKET_KINDS} | values
        return cls(**values)

    @classmethod
    def uniform(cls, rate: float, **kw: float) -> FaultSpec:
        """Every fault kind but those of :data:`BY_NAME` at ``rate``; ``kw`` sets the others."""
        return cls(**({_field(k): rate for k in BLANKET_KINDS} | kw))

    def any(self) -> bool:
        return any(getattr(self, _field(k)) > 0 for k in KINDS)

    def rate(self, kind: str) -> float:
        return float(getattr(self, _field(kind)))

    def draw(self, rng: random.Random, kinds: tuple[str, ...]) -> str | None:
        """The first kind whose draw hits, or None.

        One number is drawn per kind every time, whatever the rates, so the sequence of draws (and
        so a run) depends only on the seed and the number of requests. A kind of :data:`BY_NAME`
        is drawn only when its rate is set, so a spec without it replays exactly as before.
        """
        hit = None
        for kind in kinds:
            if kind not in BLANKET_KINDS and self.rate(kind) == 0:
                continue
            u = rng.random()
            if hit is None and u < self.rate(kind):
                hit = kind
        return hit

    def describe(self) -> str:
        """The spec in the grammar :meth:`parse` reads (non-default items only)."""
        default = FaultSpec()
        parts = [
            f"{f.name.removeprefix('rate_')}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ",".join(parts) or "none"


def _parse_item(item: str) -> dict[str, float | int]:
    valid = ", ".join(VALID_NAMES)
    name, sep, raw = (s.strip() for s in item.partition("="))
    name = name.lower()
    if not sep or name not in VALID_NAMES:
        raise ValueError(f"fault spec item {item!r}: unknown name {name!r}; valid names: {valid}")
    kind = _SETTINGS.get(name, float)
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"fault spec item {item!r}: {raw!r} is not a {kind.__name__}; valid names: {valid}"
        ) from None
    if name in _SETTINGS:
        if value < 0:
            raise ValueError(f"fault spec item {item!r}: must be >= 0; valid names: {valid}")
        return {name: value}
    if not 0 <= value <= 1:
        raise ValueError(
            f"fault spec item {item!r}: rate must be within [0, 1]; valid names: {valid}"
        )
    return {name if name == "all" else _field(name): value}


__all__ = ["KINDS", "REST_KINDS", "WS_KINDS", "FaultSpec"]
