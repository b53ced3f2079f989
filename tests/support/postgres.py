"""The local PostgreSQL (127.0.0.1:5432, trust auth) as tests use it: a fresh database each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.processes import unavailable

PG = "postgres@127.0.0.1:5432"


def connect(dbname: str):
    import psycopg

    return psycopg.connect(f"postgresql://{PG}/{dbname}", autocommit=True, connect_timeout=5)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg (psycopg[binary]) is not installed; it is in the dev extra")
    try:
        admin = connect("postgres")
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable on {PG}: {exc}".strip())
    name = f"mlalgo_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
