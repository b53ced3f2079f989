"""The online feature engine: streaming twins of the batch kernels, for the live side.

Training/serving skew is the usual way a trading model dies in production. Here one
:class:`~mlalgo.features.spec.FeatureSpec` drives both engines, and the online engine reproduces
the batch values to 1e-9 at every bar, in O(1) per bar and without pandas.

* One twin per feature kind, nautilus-style: ``update(x) -> float`` (NaN until warm; a twin
  of a feature reading several columns, ATR, takes the tuple of them),
  ``initialized``, and a JSON-able ``state()`` with ``restore(state)``/``from_state(state)``.
* :class:`OnlineFeatures` runs a whole spec over ONE symbol's bars: ``update(bar)``,
  ``warm_up(bars)``, ``ready``, ``snapshot()`` and ``OnlineFeatures.restore(spec, snapshot)``.
  For several symbols keep one engine per symbol, or let :class:`OnlineFeatureSet` route bars.
"""

from mlalgo.features.online._base import Stream
from mlalgo.features.online.ar1 import AR1ZScoreStream
from mlalgo.features.online.atr import ATRStream
from mlalgo.features.online.averages import DistEMAStream, DistSMAStream, EMAStream, SMAStream
from mlalgo.features.online.crossover import MACrossStream, MASpreadStream
from mlalgo.features.online.dispersion import (
    BollingerBStream,
    StdStream,
    VolatilityStream,
    ZScoreStream,
)
from mlalgo.features.online.engine import (
    SNAPSHOT_FORMAT,
    TWINS,
    OnlineFeatures,
    OnlineFeatureSet,
    twin_for,
)
from mlalgo.features.online.momentum import LogReturnStream, RSIStream, SimpleReturnStream

__all__ = [
    "SNAPSHOT_FORMAT",
    "TWINS",
    "AR1ZScoreStream",
    "ATRStream",
    "BollingerBStream",
    "DistEMAStream",
    "DistSMAStream",
    "EMAStream",
    "LogReturnStream",
    "MACrossStream",
    "MASpreadStream",
    "OnlineFeatureSet",
    "OnlineFeatures",
    "RSIStream",
    "SMAStream",
    "SimpleReturnStream",
    "StdStream",
    "Stream",
    "VolatilityStream",
    "ZScoreStream",
    "twin_for",
]
