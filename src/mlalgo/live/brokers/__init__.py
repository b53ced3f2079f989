"""Broker clients for live trading: Binance Spot and Alpaca over their REST APIs.

They depend on ``requests`` and :mod:`mlalgo.live.broker` only (no pandas), and never on the
replay exchange they are tested against.
"""

from mlalgo.live.brokers.alpaca import AlpacaBroker
from mlalgo.live.brokers.binance import BinanceBroker

__all__ = ["AlpacaBroker", "BinanceBroker"]
