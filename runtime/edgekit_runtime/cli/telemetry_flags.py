"""``serve``'s telemetry flags: the outbox, the broker, the fleet agent; from flags to their settings."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import click

from edgekit_runtime.cli import config_file
from edgekit_runtime.cli.help_sections import SectionOption
from edgekit_runtime.cli.params import PATH, POSITIVE, REPLAY_HOURS, WATCH_SECONDS, WINDOW_SECONDS, Choice
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.mqtt.settings import PROTOCOLS

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import SimpleNamespace

    from edgekit_runtime.fleet.settings import DeviceConfig
    from edgekit_runtime.telemetry.service import TelemetrySettings

#: the ``--help`` section's title and what it says
SECTION = "telemetry"
ABOUT = (
    "Windows of request, latency, drift and system numbers, kept in an outbox in --state-dir and sent to the "
    "broker given by --mqtt (docs/telemetry.md)."
)

_option = functools.partial(click.option, cls=SectionOption, section=SECTION)
_OPTIONS = (
    _option("--no-telemetry", is_flag=True, help="record nothing, send nothing"),
    _option(
        "--state-dir",
        type=PATH,
        metavar="DIR",
        help="where the outbox lives (default: $STATE_DIRECTORY, else ~/.local/state/edgekit-runtime)",
    ),
    _option("--fleet", default="default", metavar="NAME", help="fleet name, a topic level (default: default)"),
    _option("--device", metavar="ID", help="device id, a topic level (default: the host name)"),
    _option("--telemetry-interval", type=WINDOW_SECONDS, default=10.0, help="seconds per window (default: 10)"),
    _option(
        "--outbox-max-mb",
        type=POSITIVE,
        default=64.0,
        metavar="MIB",
        help="outbox bound in MiB; the oldest go first (default: 64)",
    ),
    _option(
        "--outbox-max-age-hours",
        type=POSITIVE,
        default=168.0,
        metavar="HOURS",
        help="oldest window kept, in hours (default: 168)",
    ),
    _option(
        "--outbox-replay-hours",
        type=REPLAY_HOURS,
        default=24.0,
        metavar="HOURS",
        help="hours a sent window is kept for the collector to ask for again; 0 deletes it once the broker has it"
        " (default: 24)",
    ),
    _option("--mqtt", metavar="URL", help="broker: mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS"),
    _option("--mqtt-username", metavar="USER", help="broker user name"),
    _option("--mqtt-password-file", type=PATH, metavar="FILE", help="file holding the broker password"),
    _option("--mqtt-ca", type=PATH, metavar="FILE", help="CA certificates the broker's is checked against"),
    _option("--mqtt-cert", type=PATH, metavar="FILE", help="client certificate (PEM), with --mqtt-key"),
    _option("--mqtt-key", type=PATH, metavar="FILE", help="client certificate's private key (PEM)"),
    _option("--mqtt-protocol", type=Choice(PROTOCOLS), default="5", help="MQTT version (default: 5)"),
    _option(
        "--group",
        multiple=True,
        metavar="NAME",
        callback=config_file.added,
        help="with --mqtt: a fleet group this device takes commands for (edgekit/FLEET/@NAME/cmd); repeat for more",
    ),
    _option(
        "--deploy-watch",
        type=WATCH_SECONDS,
        default=30.0,
        metavar="SECONDS",
        help="with --mqtt: how long a newly deployed model is watched before it is committed (default: 30; 0 "
        "commits once its self-test passed). set-config changes it, and what it set wins at the next start",
    ),
    _option(
        "--command-max-age",
        type=POSITIVE,
        default=600.0,
        metavar="SECONDS",
        help="with --mqtt and --trust: how long after it was signed a fleet command is still taken (default: 600)",
    ),
    _option(
        "--max-bundle-mb",
        type=POSITIVE,
        default=1024.0,
        metavar="MB",
        help="with --mqtt: the largest bundle a deploy may fetch, in MiB (default: 1024)",
    ),
    _option(
        "--mqtt-reconnect-max",
        type=POSITIVE,
        default=30.0,
        metavar="SECONDS",
        help="longest wait between reconnect attempts; waits double up to it, with full jitter (default: 30)",
    ),
)


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the telemetry flags, in the order ``--help`` lists them."""
    for add in reversed(_OPTIONS):
        command = add(command)
    return command


def telemetry_settings(args: SimpleNamespace) -> TelemetrySettings | None:
    """The telemetry flags, checked; ``None`` with --no-telemetry."""
    from edgekit_runtime.mqtt.settings import MqttSettings
    from edgekit_runtime.telemetry.outbox import OutboxLimits
    from edgekit_runtime.telemetry.publisher import PublisherSettings
    from edgekit_runtime.telemetry.recorder import RecorderSettings
    from edgekit_runtime.telemetry.service import TelemetrySettings, default_device, default_state_dir

    if args.no_telemetry:
        if args.mqtt:
            raise ConfigError("--mqtt sends telemetry and --no-telemetry turns it off: give one of them")
        return None
    mqtt = None
    if args.mqtt:
        mqtt = MqttSettings(
            args.mqtt,
            username=args.mqtt_username,
            password_file=args.mqtt_password_file,
            ca_file=args.mqtt_ca,
            cert_file=args.mqtt_cert,
            key_file=args.mqtt_key,
            protocol=args.mqtt_protocol,
        )
    elif any((args.mqtt_username, args.mqtt_password_file, args.mqtt_ca, args.mqtt_cert, args.mqtt_key)):
        raise ConfigError("the --mqtt-* options need a broker: add --mqtt URL")
    return TelemetrySettings(
        state_dir=args.state_dir or default_state_dir(),
        fleet=args.fleet,
        device=args.device or default_device(),
        recorder=RecorderSettings(interval=args.telemetry_interval),
        outbox=OutboxLimits(
            max_bytes=int(args.outbox_max_mb * (1 << 20)),
            max_age=args.outbox_max_age_hours * 3600.0,
            replay=args.outbox_replay_hours * 3600.0,
        ),
        mqtt=mqtt,
        publisher=PublisherSettings(
            backoff_initial=min(0.5, args.mqtt_reconnect_max), backoff_max=args.mqtt_reconnect_max
        ),
    )


def device_config(args: SimpleNamespace) -> tuple[DeviceConfig | None, list[str]]:
    """What ``set-config`` changes: the flags, with its choices kept in the state directory on top (they win).

    The flags it overrides are changed in ``args``; returns the config (``None`` with --no-telemetry: no state
    directory, no fleet agent) and what the kept choices changed, to say at start. Kept choices that no longer
    pass the checks are ignored, with a warning: the device starts with the flags.
    """
    from edgekit_runtime.fleet.settings import ConfigFile, DeviceConfig, starting_config
    from edgekit_runtime.telemetry.service import default_state_dir

    if args.no_telemetry:
        return None, []
    flags = DeviceConfig(
        deploy_watch=args.deploy_watch, telemetry_interval=args.telemetry_interval, log_level=args.log_level
    )
    start = starting_config(flags, ConfigFile(args.state_dir or default_state_dir()))
    if start.ignored:
        logging.getLogger("edgekit_runtime.fleet").warning("%s", start.ignored)
    for flag in ("deploy_watch", "telemetry_interval", "log_level"):
        setattr(args, flag, getattr(start.config, flag))
    return start.config, list(start.changed)
