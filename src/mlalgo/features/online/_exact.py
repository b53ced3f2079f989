"""Fixed-point integers, so running sums over a sliding window are exact.

A float running sum drifts: each add and subtract rounds, and the residue a large value leaves
behind when it slides out of the window can swamp the small values that remain. Periodic exact
re-summation only bounds the drift, and windows just after a jump, or nearly flat ones, still
need special cases. Instead the windowed twins map each value ``x`` to the integer
``int(x * 2**64)``, which is exact for every ``|x| >= 2**-12`` and within ``2**-64`` (5e-20)
below, far under the spread of any window of log prices or returns that moves at all, and keep
their sums as Python integers. Integer sums never round, so after any number of updates they
equal the sums of the current window exactly: nothing drifts, nothing needs recomputing, a
constant window gives exactly zero spread, and each value is computed from exact moments with a
few final roundings. The integers stay a few hundred bits wide, so an update is still O(1);
2**64 keeps log prices and returns within three 30-bit digits, which measured faster than
wider scales.
"""

from __future__ import annotations

SCALE_BITS = 64
SCALE = 2.0**SCALE_BITS  # x * SCALE is exact (a power of two) for |x| < 2**(1024 - 64)
