"""``edgekit-runtime``: the device command. Plain argparse: the device install stays small.

``edgekit-runtime serve MODEL`` verifies, loads and self-tests a bundle, then serves it over HTTP
(:mod:`edgekit_runtime.server`, imported only by that command). Every refusal is one line,
``error: ...``, on stderr, and a non-zero exit: 2 for a flag that cannot work, 3 for a bundle that cannot
be trusted or run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from edgekit_runtime import __version__, bench, doctor, target_args
from edgekit_runtime.arg_types import count as _count
from edgekit_runtime.arg_types import milliseconds as _milliseconds
from edgekit_runtime.arg_types import port as _port
from edgekit_runtime.arg_types import positive as _positive
from edgekit_runtime.arg_types import seconds as _seconds
from edgekit_runtime.arg_types import watch as _watch
from edgekit_runtime.errors import ConfigError, RuntimeKitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgekit_runtime.fleet.deploy import Phase
    from edgekit_runtime.fleet.settings import DeviceConfig
    from edgekit_runtime.fleet.signed_command import CommandPolicy
    from edgekit_runtime.model import LoadOptions, Model
    from edgekit_runtime.server.app import App
    from edgekit_runtime.server.settings import ServerSettings
    from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings

#: usage errors exit with this, as argparse's do
USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaints in the runtime's one-line form."""

    def error(self, message: str) -> NoReturn:
        """``error: MESSAGE (see PROG --help)`` on stderr, and exit 2."""
        self.exit(USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = _Parser(prog="edgekit-runtime", description="Run an edgekit bundle on this device.")
    parser.add_argument("--version", action="version", version=f"edgekit-runtime {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(commands)
    doctor.add_parser(commands)
    bench.add_parser(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    from dataclasses import fields

    from edgekit_runtime.server.settings import (
        DEFAULT_MAX_BODY,
        DEFAULT_MEMORY_BUDGET,
        LOG_LEVELS,
        ServerSettings,
    )

    default = {f.name: f.default for f in fields(ServerSettings)}  # the limits' defaults, where they are documented

    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP",
        description=(
            "Verify, load and self-test MODEL, then serve it over HTTP: Open Inference Protocol v2 (/v2/...), "
            "the simple {'features': [...]} form (/predict), MLflow's scoring protocol (/invocations, /ping), "
            "and Prometheus metrics (/metrics). Stops gracefully on SIGTERM or Ctrl-C."
        ),
    )
    serve.add_argument(
        "model",
        metavar="MODEL",
        type=Path,
        nargs="?",
        help="an .edgebundle, or a plain .onnx file (or 'model' in --config)",
    )
    serve.add_argument(
        "--config", type=Path, metavar="FILE", help="a TOML file of these flags; flags given here win over it"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this device)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (default: 8080; 0 picks a free one)")
    serve.add_argument(
        "--threads",
        type=_count,
        help="engine threads per model call (default: the --target's, else cores / --concurrency, at least 1)",
    )
    target_args.add_arguments(serve)
    serve.add_argument(
        "--trust",
        action="extend",
        nargs="+",
        type=Path,
        default=[],
        metavar="KEYFILE_OR_DIR",
        help="trusted public key (.pub), or a folder of them: the bundle must be signed by one",
    )
    serve.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="with --trust, still serve an unsigned bundle or a plain .onnx (a signed one must still verify)",
    )
    serve.add_argument(
        "--concurrency",
        type=_count,
        help="model calls running at once (default: the CPU cores; with --target, cores / its threads)",
    )
    serve.add_argument("--max-batch", type=_count, help="micro-batch up to N samples per model call (default: off)")
    serve.add_argument(
        "--max-delay-ms",
        type=_milliseconds,
        help="with --max-batch: longest an idle engine waits for a batch to fill (default: 0, batch only what "
        "queues behind a busy engine)",
    )
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="server log level (default: warning)")
    limits = serve.add_argument_group(
        "limits", "What one client may take of the server (docs/runtime.md, Limits). Seconds may be fractions."
    )
    limits.add_argument(
        "--max-body-bytes",
        type=_count,
        default=DEFAULT_MAX_BODY,
        help="largest request body, after decompression (default: 16 MiB)",
    )
    limits.add_argument(
        "--memory-budget-mb",
        type=_positive,
        default=DEFAULT_MEMORY_BUDGET / (1 << 20),
        metavar="MIB",
        help="memory that request bodies and the JSON and arrays they decode into may hold at once; more waits "
        "(default: %(default)g)",
    )
    limits.add_argument(
        "--memory-wait",
        type=_positive,
        default=default["memory_wait"],
        metavar="SECONDS",
        help="longest a request waits for room in the memory budget before a 503 (default: %(default)g)",
    )
    limits.add_argument(
        "--max-connections",
        type=_count,
        default=default["max_connections"],
        help="open connections; past it a new one closes the longest-idle one, or is closed if none is idle "
        "(default: %(default)d)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_positive,
        default=default["idle_timeout"],
        metavar="SECONDS",
        help="a connection with no request on it is closed after this (default: %(default)g)",
    )
    limits.add_argument(
        "--header-timeout",
        type=_positive,
        default=default["header_timeout"],
        metavar="SECONDS",
        help="a request head not complete this long after it began gets a 408 and is closed (default: %(default)g)",
    )
    limits.add_argument(
        "--body-timeout",
        type=_positive,
        default=default["body_timeout"],
        metavar="SECONDS",
        help="a request body that does not arrive, or stops, for this long gets a 408 (default: %(default)g)",
    )
    _add_telemetry(serve)
    serve.set_defaults(run=_serve)


def _add_telemetry(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "telemetry",
        "Windows of request, latency, drift and system numbers, kept in an outbox in --state-dir and sent to "
        "the broker given by --mqtt (docs/telemetry.md).",
    )
    group.add_argument("--no-telemetry", action="store_true", help="record nothing, send nothing")
    group.add_argument(
        "--state-dir",
        type=Path,
        help="where the outbox lives (default: $STATE_DIRECTORY, else ~/.local/state/edgekit-runtime)",
    )
    group.add_argument("--fleet", default="default", help="fleet name, a topic level (default: default)")
    group.add_argument("--device", help="device id, a topic level (default: the host name)")
    group.add_argument("--telemetry-interval", type=_seconds, default=10.0, help="seconds per window (default: 10)")
    group.add_argument(
        "--outbox-max-mb",
        type=_positive,
        default=64.0,
        help="outbox bound in MiB; the oldest go first (default: 64)",
    )
    group.add_argument(
        "--outbox-max-age-hours",
        type=_positive,
        default=168.0,
        help="oldest window kept, in hours (default: 168)",
    )
    group.add_argument("--mqtt", metavar="URL", help="broker: mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS")
    group.add_argument("--mqtt-username", metavar="USER", help="broker user name")
    group.add_argument("--mqtt-password-file", type=Path, metavar="FILE", help="file holding the broker password")
    group.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="CA certificates the broker's is checked against")
    group.add_argument("--mqtt-cert", type=Path, metavar="FILE", help="client certificate (PEM), with --mqtt-key")
    group.add_argument("--mqtt-key", type=Path, metavar="FILE", help="client certificate's private key (PEM)")
    group.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), default="5", help="MQTT version (default: 5)")
    group.add_argument(
        "--group",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="with --mqtt: fleet groups this device takes commands for (edgekit/FLEET/@NAME/cmd)",
    )
    group.add_argument(
        "--deploy-watch",
        type=_watch,
        default=30.0,
        metavar="SECONDS",
        help="with --mqtt: how long a newly deployed model is watched before it is committed (default: 30; 0 "
        "commits once its self-test passed). set-config changes it, and what it set wins at the next start",
    )
    group.add_argument(
        "--command-max-age",
        type=_positive,
        default=600.0,
        metavar="SECONDS",
        help="with --mqtt and --trust: how long after it was signed a fleet command is still taken (default: 600)",
    )
    group.add_argument(
        "--max-bundle-mb",
        type=_positive,
        default=1024.0,
        metavar="MB",
        help="with --mqtt: the largest bundle a deploy may fetch, in MiB (default: 1024)",
    )
    group.add_argument(
        "--mqtt-reconnect-max",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="longest wait between reconnect attempts; waits double up to it, with full jitter (default: 30)",
    )


def _telemetry(args: argparse.Namespace) -> TelemetrySettings | None:
    """The telemetry flags, checked; ``None`` with --no-telemetry."""
    from edgekit_runtime.telemetry.mqtt import MqttSettings
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
        outbox=OutboxLimits(max_bytes=int(args.outbox_max_mb * (1 << 20)), max_age=args.outbox_max_age_hours * 3600.0),
        mqtt=mqtt,
        publisher=PublisherSettings(
            backoff_initial=min(0.5, args.mqtt_reconnect_max), backoff_max=args.mqtt_reconnect_max
        ),
    )


def _device_config(args: argparse.Namespace) -> tuple[DeviceConfig | None, list[str]]:
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


def _settings(args: argparse.Namespace) -> ServerSettings:
    from edgekit_runtime.server.settings import ServerSettings

    if args.max_delay_ms is not None and args.max_batch is None:
        raise ConfigError("--max-delay-ms needs --max-batch: give both, or neither")
    return ServerSettings(
        host=args.host,
        port=args.port,
        concurrency=target_args.default_concurrency(args, target_args.cores_here()),
        max_batch=args.max_batch,
        max_delay_ms=0.0 if args.max_delay_ms is None else args.max_delay_ms,
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
        memory_budget=round(args.memory_budget_mb * (1 << 20)),
        memory_wait=args.memory_wait,
        log_level=args.log_level,
    )


def load_options(args: argparse.Namespace, settings: ServerSettings) -> LoadOptions:
    """How bundles are verified and loaded: the trusted keys, and the engine's threads and providers."""
    from edgekit_runtime.model import LoadOptions
    from edgekit_runtime.signing import load_trusted_keys
    from edgekit_runtime.telemetry.service import default_state_dir

    if args.allow_unsigned and not args.trust:
        raise ConfigError("--allow-unsigned only matters with --trust: leave it out, or add --trust KEYFILE")
    keys = load_trusted_keys(args.trust)
    state_dir = args.state_dir or default_state_dir()
    return LoadOptions(
        trusted_keys=keys,
        require_signature=False if args.allow_unsigned else None,
        backend=target_args.engine_settings(args, settings.concurrency, target_args.cores_here(), state_dir),
    )


def load_for_serving(args: argparse.Namespace, settings: ServerSettings, path: Path | None = None) -> Model:
    """The verified, self-tested model (``path``, else MODEL), checked against the server's settings."""
    from edgekit_runtime.model import load

    model = load(path or args.model, load_options(args, settings))
    settings.check_model(model)
    return model


def _serve(args: argparse.Namespace) -> int:
    from edgekit_runtime.fleet import service as fleet
    from edgekit_runtime.fleet.agent import READ_ONLY
    from edgekit_runtime.fleet.settings import CONFIG
    from edgekit_runtime.fleet.signed_command import CommandPolicy
    from edgekit_runtime.server.serve import listen, serve
    from edgekit_runtime.telemetry.mqtt import check_name
    from edgekit_runtime.telemetry.service import Telemetry

    if args.model is None:
        raise ConfigError("no model to serve: give MODEL, or 'model' in --config")
    target_args.warn_mismatch(args.target)
    config, overridden = _device_config(args)  # before the flags it may override are read
    settings = _settings(args)
    telemetry_settings = _telemetry(args)
    command_policy = CommandPolicy(max_age=args.command_max_age)
    sock = listen(settings.host, settings.port)  # a port already taken fails before the model loads
    telemetry, ended, committed = None, None, None
    try:
        if telemetry_settings is not None:  # a committed deploy serves instead of MODEL after a restart
            committed, phase, command_id = fleet.recovered(telemetry_settings.state_dir)
            ended = None if phase is None or command_id is None else (phase, command_id)
        model = load_for_serving(args, settings, committed)
        if telemetry_settings is not None:
            telemetry = Telemetry(telemetry_settings, fleet.identity(model), model.reference)
    except BaseException:
        sock.close()
        raise
    devices = ", ".join(model.backend.devices)
    options = load_options(args, settings)

    notes = target_args.provider_note(args.target, model.backend.name, model.backend.devices)

    def ready(url: str) -> None:
        print(f"serving {model.name} {model.version} on {url} ({model.backend.name}, {devices})", flush=True)
        sys.stderr.write("".join(f"{line}\n" for line in notes))
        sys.stderr.flush()
        if overridden:
            logging.getLogger("edgekit_runtime.fleet").warning(
                "set-config's choices in the state directory's %s win over the command line: %s",
                CONFIG,
                "; ".join(overridden),
            )

    for name in args.group:
        check_name("group", name)

    if telemetry is not None and telemetry.publisher is not None and not options.trusted_keys:
        notes.append(f"note: {READ_ONLY}")
    with_agent = _agent_starter(args, options, telemetry, config, ended, command_policy)
    serve(model, settings, sock=sock, on_ready=ready, telemetry=telemetry, on_app=with_agent)
    return 0


def _agent_starter(  # noqa: PLR0917  (what serve gathered, handed on)
    args: argparse.Namespace,
    options: LoadOptions,
    telemetry: Telemetry | None,
    config: DeviceConfig | None,
    ended: tuple[Phase, str] | None,
    command_policy: CommandPolicy,
) -> Callable[[App], None]:
    """What starts the fleet agent once the app exists (nothing without a broker)."""
    from edgekit_runtime.fleet import service as fleet
    from edgekit_runtime.model import load

    deploys = dataclasses.replace(options, require_signature=True)  # --allow-unsigned is for MODEL alone

    def with_agent(app: App) -> None:
        if telemetry is not None and telemetry.publisher is not None:
            fleet.start_agent(
                app,
                telemetry,
                open_model=lambda path: load(path, deploys),
                groups=args.group,
                policy=config.policy() if config is not None else None,
                ended=ended,
                config=config,
                trusted_keys=options.trusted_keys,
                command_policy=command_policy,
                max_bundle_bytes=int(args.max_bundle_mb * (1 << 20)),
            )

    return with_agent


def _with_config(parser: argparse.ArgumentParser, argv: list[str] | None, path: Path) -> argparse.Namespace:
    """Parse again, with the config file's values as the defaults of the command's flags."""
    from edgekit_runtime import config

    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    for sub in commands.choices.values():
        if any(a.dest == "config" for a in sub._actions):  # noqa: SLF001
            config.apply(sub, path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        if getattr(args, "config", None) is not None:
            args = _with_config(parser, argv, args.config)
        code: int = args.run(args)
    except RuntimeKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
