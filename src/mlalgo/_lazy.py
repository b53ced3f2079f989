"""Package attributes that import their module on first use (PEP 562).

Why: every process that reads a pipeline config imports a few packages only for one class each
(the schedule section's model, say), and the live process must not pay for the modules a
package also holds (the scheduler, the network clients of the feeds it does not use).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds ``name`` in ``package.<homes[name]>``."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{home}"), name)

    return __getattr__
