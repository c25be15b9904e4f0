"""Fixtures every test folder shares: where the bundled examples are."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"


@pytest.fixture(scope="session")
def digits() -> Path:
    """The bundled digits models and data (examples/digits)."""
    return DIGITS


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A Mosquitto of the test's own, started on a free loopback port (tests may kill and restart it)."""
    from tests.brokers import Mosquitto

    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def tls_mosquitto(tmp_path_factory):
    """Mosquitto with TLS only, a client certificate required, and a password file: yields (broker, pki folder).

    Users ``pi-1`` (password ``device-pw``) and ``collector`` (``s3cret``); ``pki`` has ``ca.pem``,
    ``client.pem`` and ``client.key`` (``tests/certs.py``).
    """
    import subprocess

    from tests.brokers import MOSQUITTO_PASSWD, Mosquitto
    from tests.certs import make_pki

    folder = tmp_path_factory.mktemp("tls-broker")
    pki = make_pki(folder / "pki")
    passwords = folder / "passwd"
    passwords.write_text("")
    for user, password in (("pi-1", "device-pw"), ("collector", "s3cret")):
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password], check=True, capture_output=True)
    extra = (
        f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate true\npassword_file {passwords}\n"
    )
    broker = Mosquitto(folder, anonymous=False, extra=extra)
    broker.start()
    yield broker, pki
    broker.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL for the session: ``EDGEKIT_TEST_POSTGRES`` if set, else one started on a free
    loopback port (:mod:`tests.postgres`), stopped at the end."""
    import os

    if os.environ.get("EDGEKIT_TEST_POSTGRES"):
        yield os.environ["EDGEKIT_TEST_POSTGRES"]
        return
    from tests.postgres import Postgres

    server = Postgres()
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
