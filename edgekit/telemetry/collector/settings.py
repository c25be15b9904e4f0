"""What the collector (and the operator's fleet commands) connect to: :class:`CollectorSettings`, checked when made."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from edgekit.errors import ConfigError
from edgekit.telemetry.messages import NAME
from edgekit_runtime.mqtt.settings import HOST_OPTIONS, MqttSettings

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class CollectorSettings:
    """Where the broker is, what to subscribe to, and how to batch; checked when made."""

    #: ``mqtt://HOST[:PORT]`` (port 1883) or ``mqtts://HOST[:PORT]`` (TLS, port 8883)
    broker: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: CA bundle to check the broker's certificate against (default: the system's)
    ca_file: Path | None = None
    #: client certificate and its key, for brokers that ask for one
    cert_file: Path | None = None
    key_file: Path | None = None
    #: the fleet to collect, or ``+`` for all
    fleet: str = "+"
    #: a shared-subscription group: collectors in one group split the telemetry between them
    share: str | None = None
    #: the MQTT client id (default: one derived from the database, the fleet and the share group, so a restarted
    #: collector resumes its session)
    client_id: str | None = None
    #: seconds the broker keeps the session (and queues messages) while the collector is away (default one day)
    session_expiry: int | None = None
    keepalive: int = 30
    #: the most messages one transaction commits
    max_batch: int = 500
    #: how long the writer waits for a first message before looking at whether it should stop
    max_delay: float = 0.05
    #: reconnect backoff: full jitter over ``min(reconnect_max, reconnect_min * 2**attempt)`` seconds
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    #: whether to ask devices for the gaps in their ``seq`` (:mod:`.repair`); ``None``: yes, unless ``share`` is set
    #: (collectors of a group that store into separate databases each see only part of every device's windows)
    repair: bool | None = None
    #: seconds between looks for gaps in each device's ``seq``
    repair_interval: float = 10.0
    #: a gap is asked for once the window after it is this many seconds old (it may still fill by itself)
    repair_grace: float = 10.0
    #: how far back, in seconds of windows received, gaps are looked for (the device keeps sent windows a day)
    repair_horizon: float = 86400.0

    def __post_init__(self) -> None:
        """Check every field, naming the option to fix."""
        _ = self.mqtt  # the broker URL, keepalive, client id and TLS files
        if self.fleet != "+" and not NAME.fullmatch(self.fleet):
            raise ConfigError(f"--fleet '{self.fleet}' is not a fleet name: use + or 1 to 64 of A-Z a-z 0-9 . _ -")
        if self.share is not None and not NAME.fullmatch(self.share):
            raise ConfigError(f"--share '{self.share}' is not a group name: use 1 to 64 of A-Z a-z 0-9 . _ -")
        if self.session_expiry is not None and not 0 <= self.session_expiry <= 2**32 - 1:
            raise ConfigError(f"--session-expiry {self.session_expiry} is out of range: use 0 to 4294967295 seconds")
        if self.max_batch < 1 or self.max_delay <= 0:
            raise ConfigError("max_batch must be 1 or more and max_delay more than 0 seconds")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ConfigError("reconnect backoff needs 0 < reconnect_min <= reconnect_max")
        if not (self.repair_interval > 0 and self.repair_grace >= 0 and self.repair_horizon > 0):
            raise ConfigError("gap repair needs repair_interval > 0, repair_grace >= 0 and repair_horizon > 0 seconds")

    @property
    def repairing(self) -> bool:
        """Whether gaps are asked for: ``repair``, else not in a shared subscription."""
        return self.repair if self.repair is not None else self.share is None

    @cached_property
    def mqtt(self) -> MqttSettings:
        """The connection's settings (MQTT 5), errors naming the host's options."""
        return MqttSettings(
            self.broker,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            keepalive=self.keepalive,
            client_id=self.client_id,
            options=HOST_OPTIONS,
        )

    def address(self) -> tuple[str, int]:
        """The broker's host and port."""
        return self.mqtt.address()

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS."""
        return self.mqtt.tls

    @property
    def safe_url(self) -> str:
        """The broker URL without user or password, for messages and logs."""
        return self.mqtt.safe_url

    def credentials(self) -> tuple[str | None, str | None]:
        """User name and password: from the URL, else from ``username`` and ``password``."""
        return self.mqtt.credentials()

    def topics(self) -> list[tuple[str, int]]:
        """What to subscribe to, all QoS 1: telemetry and events (shared when ``share`` is set), and state."""
        shared = "" if self.share is None else f"$share/{self.share}/"
        return [
            (f"{shared}edgekit/{self.fleet}/+/telemetry", 1),
            (f"{shared}edgekit/{self.fleet}/+/events", 1),
            (f"edgekit/{self.fleet}/+/state", 1),
        ]
