"""The replay exchange: serve stored bars as Binance (REST + WebSocket) and Alpaca would, and
fill their market orders against a ledger (``ReplayExchange.ledger``).

``ReplayExchange`` runs in a background thread (tests, notebooks); ``serve`` blocks (the CLI).
"""

from mlalgo.data.exchange.faults import FaultSpec
from mlalgo.data.exchange.server import ReplayExchange, serve

__all__ = ["FaultSpec", "ReplayExchange", "serve"]
