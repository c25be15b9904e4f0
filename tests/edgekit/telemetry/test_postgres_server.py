"""The tests' own PostgreSQL (tests/postgres.py): a cluster on a free loopback port, gone after stop; and the line
that says how to get the server binaries when they are missing."""

from __future__ import annotations

import psycopg
import pytest

from tests import postgres


def test_a_server_of_its_own_answers_then_goes_with_its_folder():
    server = postgres.Postgres()
    try:
        server.start()
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/test"
        with psycopg.connect(server.url) as db:
            assert db.execute("SELECT current_database(), current_user").fetchone() == ("test", "postgres")
            (folder,) = db.execute("SELECT current_setting('unix_socket_directories')").fetchone()
        assert folder == str(server.folder)
    finally:
        server.stop()
    assert not server.folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url, connect_timeout=2)


def test_missing_server_binaries_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres, "BINARIES", f"{tmp_path}/*/bin")
    with pytest.raises(RuntimeError) as caught:
        postgres.Postgres()
    assert str(caught.value) == (
        f"no PostgreSQL server binaries under {tmp_path}/*/bin: apt-get install postgresql (tools/dev.sh test does), "
        "or name a server in EDGEKIT_TEST_POSTGRES"
    )
