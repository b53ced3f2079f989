"""The live executor's per-bar evaluator: LightGBM's C library at once, numba once it is ready.

Motivation: the two evaluators are bit-identical but cost differently. The compiled (numba)
evaluator predicts a row of the default model in about 6 µs, but numba's import and runtime
start take about a second, which a restarted process cannot spend before its first decision.
LightGBM's C library (:mod:`mlalgo.model.native`) loads in milliseconds but takes about
20 µs a row. So a :class:`RowModel` answers with the library from the first bar; its owner
calls :meth:`RowModel.load_compiled` once it can spare the interpreter (the executor does,
after its first row is journalled and sent: the load holds the GIL for a while), and from the
next prediction after the compiled evaluator is ready, that answers. Neither number can change
at the handover, only the time it takes.

Without LightGBM's library the compiled evaluator is built at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mlalgo.model.native import native_model

if TYPE_CHECKING:
    from mlalgo.model.compiled import CompiledModel

log = logging.getLogger(__name__)


class RowModel:
    """``predict_one(row)`` for the live path; see the module docstring."""

    def __init__(self, text: str, feature_names: tuple[str, ...]) -> None:
        self.feature_names = tuple(feature_names)
        self._text = text
        self._ready = threading.Event()
        self._lock = threading.Lock()  # the handover: the compiled evaluator wins, once
        self._loader: threading.Thread | None = None
        native = native_model(text, self.feature_names)
        if native is None:
            self._predict: Callable[[np.ndarray], float] = self._compile().predict_one
            self._ready.set()
            self.evaluator = "compiled"
        else:
            self._predict = native.predict_one
            self.evaluator = "native"

    def predict_one(self, row: np.ndarray) -> float:
        """P(up) for one row of features (float64, ``feature_names`` order)."""
        return self._predict(row)

    def load_compiled(self) -> None:
        """Start loading the compiled evaluator on a background thread (once; a no-op when it
        is loading or answers already)."""
        with self._lock:
            if self._loader is not None or self._ready.is_set():
                return
            self._loader = threading.Thread(target=self._load, name="mlalgo-compile", daemon=True)
        self._loader.start()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Block until the compiled evaluator answers (starting its load); whether it does."""
        self.load_compiled()
        return self._ready.wait(timeout)

    def _load(self) -> None:
        try:
            compiled = self._compile()
        except Exception:  # the library keeps answering; it gives the same numbers
            log.exception("the compiled evaluator did not load; LightGBM's library stays")
            return
        with self._lock:
            self._predict = compiled.predict_one
            self.evaluator = "compiled"
            self._ready.set()

    def _compile(self) -> CompiledModel:
        from mlalgo.model.compiled import CompiledModel  # here: importing it starts numba

        return CompiledModel.from_text(self._text)

    def __repr__(self) -> str:
        return f"RowModel({len(self.feature_names)} features, answering: {self.evaluator})"
