"""Streaming residual z-score of a rolling AR(1) fit: exact integer sums, O(1) per update.

The OLS fit of ``X[s] = a + b X[s-1]`` over the last ``window`` pairs needs five sums, and three
running sums over the ring of the last ``window + 1`` values give them all: the regressor and
target windows are that ring without its newest and without its oldest value, and the cross sum
is the sum of neighbouring products. On the fixed-point values of :mod:`._exact` the sums, the
centred moments, the residual sum of squares and the current residual are all exact integers,
so the z-score carries only a few final roundings, and the batch kernel's NaN rules (constant
regressor; residual scale below ``S_REL_TOL`` of the target's spread) are decided on exact
quantities.
"""

from __future__ import annotations

from math import log, sqrt

from mlalgo.features.online._base import NAN, Stream, check_int
from mlalgo.features.online._exact import SCALE

# kernels.ar1: a residual scale below this fraction of the target's spread is rounding noise.
S_REL_TOL = 1e-10


class AR1ZScoreStream(Stream):
    """``kernels.ar1_zscore`` of ``log(x)`` (or of ``x`` with ``log=False``), streamed.

    With ``w = window`` and integer sums over the regressor (``Sx``, ``Sxx``), the target (``Sy``,
    ``Syy``) and the pairs (``Sxy``): ``Wxx = w Sxx - Sx^2`` is ``w`` times the centred sum of
    squares (likewise ``Wyy``, ``Wxy``), ``N = Wyy Wxx - Wxy^2`` is ``w Wxx SSR`` and
    ``M = (w q_t - Sy) Wxx - Wxy (w q_{t-1} - Sx)`` is ``w Wxx`` times the current residual, so
    ``z = M / Wxx * sqrt((w - 2) Wxx / (w N))``. The integers need floats of up to ~4 times their
    bit length, so raw (``log=False``) inputs must stay below about 1e40.
    """

    kind = "ar1_zscore"
    _params = ("window", "log")
    _fields = ("t", "i", "buf", "s", "ss", "p")
    __slots__ = ("_buf", "_c", "_i", "_log", "_p", "_s", "_ss", "_t", "_thr", "_window")

    def __init__(self, window: int = 60, log: bool = True) -> None:
        w = self._window = check_int(window, type(self).__name__, "window", 3)
        self._log = bool(log)
        self._c = (w - 2) / w
        # sd <= S_REL_TOL * sqrt(syy / w)  <=>  N <= _thr * Wxx * Wyy
        self._thr = self._c * S_REL_TOL * S_REL_TOL
        self._t = 0
        self._i = 0  # ring position of the oldest value, t mod (w + 1)
        self._buf = [0] * (w + 1)  # fixed-point values of the last w + 1 inputs
        self._s = 0  # sum(q) over the ring
        self._ss = 0  # sum(q^2)
        self._p = 0  # sum(q[j-1] * q[j]) over neighbours in the ring

    @property
    def warmup(self) -> int:
        return self._window

    def update(self, x: float) -> float:
        q = int((log(x) if self._log else x) * SCALE)
        w = self._window
        i = self._i
        buf = self._buf
        old = buf[i]
        prev = buf[i - 1]
        buf[i] = q
        nxt = i + 1 if i < w else 0
        self._i = nxt
        first = buf[nxt]  # the oldest value still in the ring
        qq = q * q
        t = self._t
        self._t = t + 1
        if t > w:
            s = self._s = self._s + (q - old)
            ss = self._ss = self._ss + (qq - old * old)
            p = self._p = self._p + (prev * q - old * first)
        else:
            s = self._s = self._s + q
            ss = self._ss = self._ss + qq
            p = self._p = self._p + prev * q if t else 0
            if t < w:
                return NAN
        sx = s - q
        sy = s - first
        wxx = w * (ss - qq) - sx * sx
        if not wxx:
            return NAN  # constant regressor: no fit
        wxy = w * p - sx * sy
        wyy = w * (ss - first * first) - sy * sy
        fxx = float(wxx)
        fn = float(wyy * wxx - wxy * wxy)
        if fn <= self._thr * fxx * wyy:
            return NAN  # an exact fit (constant target, pure trend): the residual is noise
        m = (w * q - sy) * wxx - wxy * (w * prev - sx)
        return float(m) / fxx * sqrt(self._c * fxx / fn)
