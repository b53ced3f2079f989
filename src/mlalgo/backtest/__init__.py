"""Backtesting: cost model, bar-by-bar simulation and performance metrics."""
