"""The file MLflow runs to build the pyfunc model when it loads it ("models from code").

It is logged by path, never imported by mlalgo itself.
"""

from mlflow.models import set_model

from mlalgo.serving.pyfunc import SignalModel

set_model(SignalModel())
