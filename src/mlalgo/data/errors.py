"""Errors shared by the data sources and the live feeds, in a module that imports nothing.

The live feeds catch :class:`SourceError` without loading the HTTP client (and ``requests``)
that raises it, so a replay feed starts without the network stack.
"""

from __future__ import annotations


class SourceError(RuntimeError):
    """A data source refused the request or stayed unavailable; names the source and the fix."""
