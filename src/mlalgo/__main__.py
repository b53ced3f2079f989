"""``python -m mlalgo``: the same command line as ``mlalgo`` (tuning workers start this way)."""

from mlalgo.entry import main

main()
