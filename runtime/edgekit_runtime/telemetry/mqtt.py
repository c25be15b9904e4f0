"""MQTT connection settings, topics, and the one place that builds a paho-mqtt client.

A broker is named by a URL: ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` (port 1883) or ``mqtts://...`` (TLS,
port 8883). TLS checks the broker's certificate against ``ca_file`` (or the system's store); ``cert_file``
and ``key_file`` give a client certificate. A password is better kept out of the URL, in ``password_file``.

MQTT 5 is the default; ``protocol="3.1.1"`` speaks to older brokers, which then get no message expiry and no
user properties (everything those carry is in the JSON payload as well).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgekit_runtime.errors import ConfigError

if TYPE_CHECKING:
    import socket

    from paho.mqtt.properties import Properties

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
#: a fleet or device name: one MQTT topic level, safe in file names and SQL too
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_name(kind: str, value: str) -> str:
    """``value`` if it can be a topic level, else a :class:`ConfigError` naming the flag."""
    if not NAME.fullmatch(value):  # match() would let a trailing newline through ($)
        raise ConfigError(
            f"--{kind} '{value}' cannot be an MQTT topic level: use 1 to 64 characters from A-Z a-z 0-9 . _ -"
        )
    return value


@dataclass(frozen=True)
class Topics:
    """The device's topics under ``edgekit/{fleet}/{device}/``."""

    fleet: str
    device: str

    def __post_init__(self) -> None:
        """Check both names."""
        check_name("fleet", self.fleet)
        check_name("device", self.device)

    @property
    def telemetry(self) -> str:
        """Telemetry windows (QoS 1)."""
        return f"edgekit/{self.fleet}/{self.device}/telemetry"

    @property
    def state(self) -> str:
        """Online or offline (retained; the Last Will)."""
        return f"edgekit/{self.fleet}/{self.device}/state"


@dataclass(frozen=True)
class MqttSettings:
    """Where the broker is and how to log in; checked when made."""

    url: str
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: str = "5"
    keepalive: int = 30

    def __post_init__(self) -> None:
        """Parse the URL and check the files it needs, naming the flag to fix."""
        self.address()  # raises on a bad URL
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--mqtt-protocol {self.protocol} is unknown: use 5 or 3.1.1")
        if not 5 <= self.keepalive <= 65535:  # noqa: PLR2004
            raise ConfigError(f"MQTT keepalive {self.keepalive} is out of range: use 5 to 65535 seconds")
        for flag, path in (
            ("--mqtt-password-file", self.password_file),
            ("--mqtt-ca", self.ca_file),
            ("--mqtt-cert", self.cert_file),
            ("--mqtt-key", self.key_file),
        ):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{flag} {path}: no such file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a client certificate needs both --mqtt-cert and --mqtt-key: give both, or neither")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ConfigError("--mqtt-ca and --mqtt-cert need TLS: use an mqtts:// URL")

    def address(self) -> tuple[str, int]:
        """The broker's host and port."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"--mqtt '{self.url}' is not a broker URL: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT] for TLS"
            )
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:  # not 0 as "the default": that would be a silent rewrite
            raise ConfigError(f"--mqtt '{self.url}' has a port that is not a TCP port: use 1 to 65535")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"--mqtt '{self.url}' has a path or query: give only mqtt://HOST[:PORT]")
        return parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS."""
        return self.url.startswith("mqtts:")

    def credentials(self) -> tuple[str | None, str | None]:
        """User name and password: from the URL, else from ``username`` and ``password_file``."""
        parts = urlsplit(self.url)
        user = unquote(parts.username) if parts.username else self.username
        password = unquote(parts.password) if parts.password else None
        if password is None and self.password_file is not None:
            password = Path(self.password_file).read_text().strip()
        return user, password

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        host, port = self.address()
        host = f"[{host}]" if ":" in host else host
        return f"{urlsplit(self.url).scheme}://{host}:{port}"

    @property
    def v5(self) -> bool:
        """Whether MQTT 5 is spoken."""
        return self.protocol == "5"


class Client(paho.Client):
    """paho-mqtt's client, closing the TLS socket when the handshake fails.

    paho 2.2 leaves the wrapped socket open when ``do_handshake()`` raises (a broker certificate from
    another CA, say), so every failed attempt leaks a file descriptor until the garbage collector finds it.
    The context is always ``tls_set``'s, which checks the host name itself.
    """

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        context = self._ssl_context
        if context is None:  # pragma: no cover  (paho calls this only after tls_set)
            raise ConfigError("TLS was asked for without a TLS context")
        ssl_sock = context.wrap_socket(tcp_sock, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            ssl_sock.settimeout(self._connect_timeout)
            ssl_sock.do_handshake()
        except BaseException:
            ssl_sock.close()
            raise
        return ssl_sock


class Login(Protocol):
    """What a client needs to log in: credentials and TLS files (the device's settings, or the host's)."""

    @property
    def ca_file(self) -> Path | None:
        """CA bundle to check the broker's certificate."""

    @property
    def cert_file(self) -> Path | None:
        """Client certificate."""

    @property
    def key_file(self) -> Path | None:
        """Client certificate's key."""

    @property
    def tls(self) -> bool:
        """Whether the broker URL asks for TLS."""

    def credentials(self) -> tuple[str | None, str | None]:
        """User name and password, or ``(None, None)``."""


def log_in(client: paho.Client, settings: Login) -> None:
    """Set ``settings``' credentials and TLS files (the broker's certificate checked) on ``client``."""
    user, password = settings.credentials()
    if user is not None:
        client.username_pw_set(user, password)
    if settings.tls:
        client.tls_set(
            ca_certs=None if settings.ca_file is None else str(settings.ca_file),
            certfile=None if settings.cert_file is None else str(settings.cert_file),
            keyfile=None if settings.key_file is None else str(settings.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
        )


def make_client(
    settings: MqttSettings, client_id: str, *, will: tuple[str, bytes, Properties | None] | None = None
) -> paho.Client:
    """A paho-mqtt 2 client (callback API version 2) with credentials, TLS and a retained Last Will set."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=PROTOCOLS[settings.protocol],
        clean_session=None if settings.v5 else True,
        reconnect_on_failure=False,  # the publisher reconnects, with its own backoff
    )
    log_in(client, settings)
    if will is not None:
        topic, payload, properties = will
        client.will_set(topic, payload, qos=1, retain=True, properties=properties)
    return client
