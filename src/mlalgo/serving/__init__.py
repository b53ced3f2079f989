"""The bundle as an MLflow pyfunc model: bars in, signals out (``mlflow models serve``)."""

from mlalgo.serving.pyfunc import SignalModel

__all__ = ["SignalModel"]
