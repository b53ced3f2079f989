"""LightGBM's own C library, called through ctypes, for one row at a time: the live path.

Motivation: a live process that restarts must decide again within a second. The numba
evaluator (:mod:`mlalgo.model.compiled`) is fast per row, but numba's import and its runtime
start cost about a second on their own, before the first cached function runs. LightGBM's
shared library loads in about 10 ms, parses the text model itself and has a single-row
predictor (``LGBM_BoosterPredictForMatSingleRowFast``) that takes a few microseconds. It is
LightGBM, so it gives LightGBM's numbers by construction; the tests hold it bit-equal to the
compiled evaluator and to ``lgb.Booster.predict``.

The library file is located without importing the ``lightgbm`` Python package (which would
import scikit-learn and pandas when they are installed). When it is missing,
:func:`native_model` returns None and the caller keeps the compiled evaluator.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import weakref
from pathlib import Path

import numpy as np

_LIBRARY_NAMES = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for a binary objective
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_FLOAT64 = np.dtype(np.float64)
_library: ctypes.CDLL | None = None


def library_path() -> Path | None:
    """Where the installed ``lightgbm`` wheel keeps its shared library, found without
    running the package's ``__init__``."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = _LIBRARY_NAMES.get(sys.platform, "lib_lightgbm.so")
    for folder in spec.submodule_search_locations:
        for candidate in (Path(folder) / "lib" / name, Path(folder) / name):
            if candidate.is_file():
                return candidate
    return None


def _load() -> ctypes.CDLL | None:
    global _library
    if _library is None:
        path = library_path()
        if path is None:
            return None
        lib = ctypes.cdll.LoadLibrary(str(path))
        lib.LGBM_GetLastError.restype = ctypes.c_char_p
        lib.LGBM_BoosterPredictForMatSingleRowFast.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int64),
            ctypes.c_void_p,
        ]
        _library = lib
    return _library


class NativeModel:
    """One LightGBM text model in LightGBM's C library, predicting one row at a time.

    Not thread-safe: the single-row predictor keeps its buffers between calls, so each
    thread that predicts needs its own instance (the executor predicts from one thread).
    """

    def __init__(self, text: str, feature_names: tuple[str, ...]) -> None:
        lib = _load()
        if lib is None:
            raise RuntimeError("LightGBM's shared library was not found; pip install lightgbm")
        self.feature_names = tuple(feature_names)
        booster, fast = ctypes.c_void_p(), ctypes.c_void_p()
        n_iterations = ctypes.c_int()
        _check(
            lib,
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(text.encode()), ctypes.byref(n_iterations), ctypes.byref(booster)
            ),
        )
        n_features = ctypes.c_int()
        _check(lib, lib.LGBM_BoosterGetNumFeature(booster, ctypes.byref(n_features)))
        if n_features.value != len(self.feature_names):
            lib.LGBM_BoosterFree(booster)
            raise ValueError(
                f"model text: LightGBM reads {n_features.value} features, the header names "
                f"{len(self.feature_names)}"
            )
        status = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster,
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(n_features.value),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(fast),
        )
        if status != 0:
            lib.LGBM_BoosterFree(booster)
            _check(lib, status)
        weakref.finalize(self, _free, lib, booster, fast)
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._fast = fast
        self._out = np.zeros(1)
        self._out_ptr = self._out.ctypes.data
        self._out_len = ctypes.c_int64()
        self._out_len_ref = ctypes.byref(self._out_len)
        self._row_shape = (len(self.feature_names),)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict_one(self, row: np.ndarray) -> float:
        """``Booster.predict`` of one row (P(up) for a binary model), from a float64 row of
        ``n_features`` values; anything else is converted or refused with the names."""
        if (
            row.__class__ is not np.ndarray
            or row.dtype is not _FLOAT64
            or row.shape != self._row_shape
            or not row.flags.c_contiguous
        ):
            row = np.ascontiguousarray(row, dtype=np.float64)
            if row.shape != self._row_shape:
                raise ValueError(
                    f"expected one row of {self.n_features} features "
                    f"({', '.join(self.feature_names)}), got shape {row.shape}"
                )
        if self._predict(self._fast, row.ctypes.data, self._out_len_ref, self._out_ptr) != 0:
            _check(_library, -1)  # type: ignore[arg-type]
        return float(self._out[0])

    def __repr__(self) -> str:
        return f"NativeModel({self.n_features} features, LightGBM's C library)"


def native_model(text: str, feature_names: tuple[str, ...]) -> NativeModel | None:
    """A :class:`NativeModel`, or None when LightGBM's library is not installed."""
    if library_path() is None:
        return None
    return NativeModel(text, feature_names)


def _check(lib: ctypes.CDLL, status: int) -> None:
    if status != 0:
        raise ValueError(f"LightGBM: {lib.LGBM_GetLastError().decode(errors='replace')}")


def _free(lib: ctypes.CDLL, booster: ctypes.c_void_p, fast: ctypes.c_void_p) -> None:
    lib.LGBM_FastConfigFree(fast)
    lib.LGBM_BoosterFree(booster)
