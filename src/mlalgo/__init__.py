"""mlalgo: market data to an honest, tracked, verifiable trading signal."""

__version__ = "0.1.0"
