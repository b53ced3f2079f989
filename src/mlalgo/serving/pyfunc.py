"""An MLflow ``PythonModel`` around a verified bundle.

The logged model holds the bundle folder as an artifact and this class by reference (MLflow's
"models from code", see :mod:`mlalgo.serving.entry`), so nothing is pickled: loading it in a
server verifies the bundle's hashes exactly as the live executor does, and a request is scored
by the same :func:`mlalgo.scoring.signal_records` as ``mlalgo predict``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from mlalgo.bars import BarError
from mlalgo.bundle import Bundle, load_bundle
from mlalgo.scoring import signal_records

BUNDLE_ARTIFACT = "bundle"


class SignalModel(PythonModel):
    """``predict(bars)`` -> one row per bar past warm-up: time, symbol, p_up, target, weight.

    Send each symbol's recent history (at least the feature spec's warm-up) with the bars to
    score; rows still warming up are left out of the answer.
    """

    bundle: Bundle

    def load_context(self, context: Any) -> None:
        self.bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        try:
            return signal_records(self.bundle, model_input, source="request")
        except (BarError, ValueError) as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
