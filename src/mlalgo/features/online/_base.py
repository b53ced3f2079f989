"""What every streaming twin shares: ``update(x) -> float``, ``initialized`` and a JSON state.

The state is plain data (floats, ints, bools, lists), never a pickle, so a live process can write
it to its journal and a restarted one can continue from it bit for bit: Python's JSON writes
floats in their shortest round-tripping form and integers of any size exactly (the windowed
twins' exact sums are wide integers). JSON has no NaN or infinity, so those floats are written
as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

NAN = math.nan


def encode(value: Any) -> Any:
    """A JSON-able copy of a state value: non-finite floats become strings, lists are copied."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, str):
        return float(value)
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def check_int(value: object, owner: str, name: str, minimum: int) -> int:
    """The same parameter rule as the batch kernels, so both engines accept the same specs."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


class Stream:
    """Base of the streaming twins of the batch kernels.

    Subclasses keep their parameters in ``_<param>`` slots named by ``_params`` and their mutable
    state in ``_<field>`` slots named by ``_fields``; that is all :meth:`state` and
    :meth:`restore` need, so a twin cannot forget to persist a field it declares.
    """

    __slots__ = ()
    kind: ClassVar[str]
    _params: ClassVar[tuple[str, ...]]
    _fields: ClassVar[tuple[str, ...]]

    def update(self, x: float) -> float:
        """Consume the next value and return the indicator at it (NaN while warming up)."""
        raise NotImplementedError

    @property
    def warmup(self) -> int:
        """Index of the first value that is not NaN, as the batch kernel declares it."""
        raise NotImplementedError

    @property
    def initialized(self) -> bool:
        """Whether enough values have been seen for the indicator to be defined."""
        return self._t > self.warmup  # type: ignore[attr-defined]

    def params(self) -> dict[str, Any]:
        return {p: getattr(self, "_" + p) for p in self._params}

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this twin is, as JSON-able data."""
        out: dict[str, Any] = {"kind": self.kind, **self.params()}
        out.update({f: encode(getattr(self, "_" + f)) for f in self._fields})
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state` of a twin of the same kind and parameters into this one."""
        header = {"kind": self.kind, **self.params()}
        got = {k: state.get(k) for k in header}
        if got != header:
            raise ValueError(f"cannot restore state {got} into a twin with {header}")
        missing = [f for f in self._fields if f not in state]
        if missing:
            raise ValueError(f"{self.kind} state lacks {', '.join(missing)}")
        for f in self._fields:
            value = decode(state[f])
            current = getattr(self, "_" + f)
            if isinstance(current, list) and len(value) != len(current):
                raise ValueError(
                    f"{self.kind} state: {f} holds {len(value)} values, expected {len(current)}"
                )
            setattr(self, "_" + f, value)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """A new twin continuing from ``state``."""
        twin = cls(**{p: state[p] for p in cls._params})
        twin.restore(state)
        return twin

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
