"""Broker clients for live trading: Binance Spot and Alpaca over their REST APIs.

They depend on ``requests`` and :mod:`mlalgo.live.broker` only (no pandas), and never on the
replay exchange they are tested against. Each loads on first use, so a process trading on one
venue does not import the other's client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlalgo._lazy import lazy_exports

if TYPE_CHECKING:
    from mlalgo.live.brokers.alpaca import AlpacaBroker
    from mlalgo.live.brokers.binance import BinanceBroker

_HOMES = {"AlpacaBroker": "alpaca", "BinanceBroker": "binance"}

__all__ = ["AlpacaBroker", "BinanceBroker"]


__getattr__ = lazy_exports(__name__, _HOMES)
