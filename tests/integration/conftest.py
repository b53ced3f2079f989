"""Fixtures shared by the integration tests."""

from support.postgres import database

__all__ = ["database"]
