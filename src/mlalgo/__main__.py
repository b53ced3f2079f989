"""``python -m mlalgo``: the same command line as ``mlalgo`` (tuning workers start this way)."""

from mlalgo.cli import app

app(prog_name="mlalgo")
