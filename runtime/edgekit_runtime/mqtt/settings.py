"""Where the broker is and how to log in: :class:`MqttSettings`, checked when made.

A broker is named by a URL: ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` (port 1883) or ``mqtts://...`` (TLS,
port 8883). TLS checks the broker's certificate against ``ca_file`` (or the system's store); ``cert_file``
and ``key_file`` give a client certificate. A password is better kept out of the URL: in ``password_file``
(the device) or ``password`` (the host, which reads it from a file or the environment itself).

MQTT 5 is the default; ``protocol="3.1.1"`` speaks to older brokers, which then get no message expiry and no
user properties (everything those carry is in the JSON payload as well).

The device's ``serve`` and the host's ``collect`` and ``fleet`` commands name these settings differently
(``--mqtt-ca`` there, ``--ca`` here): :class:`OptionNames` says how, so that an error names the option to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgekit_runtime.errors import ConfigError

PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True)
class OptionNames:
    """How one command line names the settings, and words its advice, in the errors it shows."""

    url: str = "--mqtt"
    password_file: str = "--mqtt-password-file"  # noqa: S105  (an option's name)
    ca_file: str = "--mqtt-ca"
    cert_file: str = "--mqtt-cert"
    key_file: str = "--mqtt-key"
    protocol: str = "--mqtt-protocol"
    #: what a URL that is not a broker's should be instead
    url_advice: str = "mqtt://HOST[:PORT] or mqtts://HOST[:PORT] for TLS"
    #: what the keepalive is called (no option sets it)
    keepalive: str = "MQTT keepalive"
    #: what TLS files need
    tls_url: str = "an mqtts:// URL"


#: ``edgekit-runtime serve``'s ``--mqtt*`` options
DEVICE_OPTIONS = OptionNames()
#: the host's ``edgekit telemetry collect`` and ``edgekit fleet`` options
HOST_OPTIONS = OptionNames(
    url="--broker",
    password_file="--password-file",  # noqa: S106  (an option's name)
    ca_file="--ca",
    cert_file="--cert",
    key_file="--key",
    protocol="--protocol",
    url_advice="mqtt://HOST[:PORT], or mqtts:// for TLS",
    keepalive="keepalive",
    tls_url="an mqtts:// broker URL",
)


@dataclass(frozen=True)
class MqttSettings:
    """Where the broker is, who this client is and how it logs in; checked when made, naming the option to fix."""

    url: str
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: str = "5"
    keepalive: int = 30
    #: the MQTT client id (``None``: the broker's or the adapter's choice)
    client_id: str | None = None
    #: the password itself, when it is not in ``password_file`` nor the URL
    password: str | None = field(default=None, repr=False)
    #: how the command line that made these settings names them
    options: OptionNames = field(default=DEVICE_OPTIONS, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse the URL and check the files it needs."""
        names = self.options
        self.address()  # raises on a bad URL
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{names.protocol} {self.protocol} is unknown: use 5 or 3.1.1")
        if not 5 <= self.keepalive <= 65535:  # noqa: PLR2004
            raise ConfigError(f"{names.keepalive} {self.keepalive} is out of range: use 5 to 65535 seconds")
        if self.client_id is not None and not (0 < len(self.client_id) <= 256 and "\x00" not in self.client_id):  # noqa: PLR2004
            raise ConfigError(f"--client-id {self.client_id!r} is not a client id: use 1 to 256 characters")
        for flag, path in (
            (names.password_file, self.password_file),
            (names.ca_file, self.ca_file),
            (names.cert_file, self.cert_file),
            (names.key_file, self.key_file),
        ):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{flag} {path}: no such file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(
                f"a client certificate needs both {names.cert_file} and {names.key_file}: give both, or neither"
            )
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ConfigError(f"{names.ca_file} and {names.cert_file} need TLS: use {names.tls_url}")

    def address(self) -> tuple[str, int]:
        """The broker's host and port."""
        shown = f"{self.options.url} '{_without_login(self.url)}'"
        try:
            parts = urlsplit(self.url)
        except ValueError as exc:  # "Invalid IPv6 URL": a bracket that opens no address
            raise ConfigError(f"{shown} is not a URL ({exc}): use {self.options.url_advice}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"{shown} is not a broker URL: use {self.options.url_advice}")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:  # not 0 as "the default": that would be a silent rewrite
            raise ConfigError(f"{shown} has a port that is not a TCP port: use 1 to 65535")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"{shown} has a path or query: give only mqtt://HOST[:PORT]")
        return parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS."""
        return self.url.lower().startswith("mqtts:")

    def credentials(self) -> tuple[str | None, str | None]:
        """User name and password: from the URL, else from ``username`` and ``password`` or ``password_file``."""
        parts = urlsplit(self.url)
        user = unquote(parts.username) if parts.username else self.username
        password = unquote(parts.password) if parts.password else self.password
        if password is None and self.password_file is not None:
            password = Path(self.password_file).read_text().strip()
        return user, password

    @property
    def safe_url(self) -> str:
        """The URL without its user and password, for logs: ``SCHEME://HOST:PORT``."""
        host, port = self.address()
        host = f"[{host}]" if ":" in host else host
        return f"{urlsplit(self.url).scheme}://{host}:{port}"

    @property
    def v5(self) -> bool:
        """Whether MQTT 5 is spoken."""
        return self.protocol == "5"


def _without_login(url: str) -> str:
    """``url`` as written, less any user and password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all ("http://[x]"): nothing past a login is shown
        scheme, _, rest = url.rpartition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if scheme else url.rpartition("@")[2]
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else url
