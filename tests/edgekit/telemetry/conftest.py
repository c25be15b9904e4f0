"""Stores for the telemetry tests: a SQLite file, and a schema of the test's own on the session's PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from edgekit.telemetry.store import open_store


@pytest.fixture
def postgres_url(postgres_server):
    """A ``postgresql://`` URL whose ``search_path`` is a new, empty schema, dropped after the test.

    The server is the session's own (``postgres_server`` in tests/conftest.py), or ``EDGEKIT_TEST_POSTGRES``.
    """
    try:
        admin = psycopg.connect(postgres_server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:  # a failure, not a skip: the PostgreSQL store must be tested
        pytest.fail(f"no PostgreSQL at {postgres_server} ({exc}): check EDGEKIT_TEST_POSTGRES, or unset it")
    schema = f"edgekit_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_server}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """Each store the collector can write to, by URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'telemetry.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    """An open store of each kind."""
    with open_store(store_url) as opened:
        yield opened
