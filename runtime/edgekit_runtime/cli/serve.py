"""``edgekit-runtime serve MODEL``: verify, load and self-test a bundle, then serve it over HTTP.

The flags become :class:`~edgekit_runtime.server.settings.ServerSettings` (:func:`settings`), the bundle's
:class:`~edgekit_runtime.model.LoadOptions` (:func:`load_options`) and the telemetry's settings
(:mod:`.telemetry_flags`); :func:`run` starts the server (:mod:`edgekit_runtime.server`, imported only here,
when the command runs) and, with a broker, the fleet agent.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from edgekit_runtime.cli import config_file, target_flags, telemetry_flags
from edgekit_runtime.cli.help_sections import SectionedCommand, SectionOption
from edgekit_runtime.cli.params import COUNT, INLINE_MS, MILLISECONDS, PATH, PORT, POSITIVE, Choice
from edgekit_runtime.errors import ConfigError
from edgekit_runtime.server.settings import DEFAULT_MAX_BODY, DEFAULT_MEMORY_BUDGET, LOG_LEVELS, ServerSettings

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from edgekit_runtime.contract.statuses import Phase
    from edgekit_runtime.fleet.settings import DeviceConfig
    from edgekit_runtime.fleet.signed_command import CommandPolicy
    from edgekit_runtime.model import LoadOptions, Model
    from edgekit_runtime.server.app import App
    from edgekit_runtime.server.workers import WorkerPool
    from edgekit_runtime.telemetry.service import Telemetry, TelemetrySettings

_DEFAULT = {f.name: f.default for f in fields(ServerSettings)}  # the limits' defaults, where they are documented
_LIMITS = "limits"
_limit = functools.partial(click.option, cls=SectionOption, section=_LIMITS)


def _seconds(flag: str, text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A limit in seconds, fractions allowed; its default is the server's."""
    default = _DEFAULT[flag.removeprefix("--").replace("-", "_")]
    return _limit(flag, type=POSITIVE, default=default, metavar="SECONDS", help=f"{text} (default: {default:g})")


@click.command(
    "serve",
    cls=SectionedCommand,
    sections={
        _LIMITS: "What one client may take of the server (docs/runtime.md, Limits). Seconds may be fractions.",
        telemetry_flags.SECTION: telemetry_flags.ABOUT,
    },
    short_help="serve a model over HTTP",
    help="Verify, load and self-test MODEL, then serve it over HTTP: Open Inference Protocol v2 (/v2/...), the "
    "simple {'features': [...]} form (/predict), MLflow's scoring protocol (/invocations, /ping), and Prometheus "
    "metrics (/metrics). Stops gracefully on SIGTERM or Ctrl-C.\n\nMODEL is an .edgebundle, or a plain .onnx file "
    "(or 'model' in --config).",
)
@click.argument("model", type=PATH, required=False)
@config_file.option()
@click.option(
    "--host", default="127.0.0.1", metavar="HOST", help="address to listen on (default: 127.0.0.1, this device)"
)
@click.option("--port", type=PORT, default=8080, help="TCP port (default: 8080; 0 picks a free one)")
@click.option(
    "--threads",
    type=COUNT,
    help="engine threads per model call (default: the --target's, else cores / --concurrency, at least 1)",
)
@target_flags.options
@click.option(
    "--trust",
    multiple=True,
    type=PATH,
    metavar="KEYFILE_OR_DIR",
    callback=config_file.added,
    help="trusted public key (.pub), or a folder of them: the bundle must be signed by one; repeat for more",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="with --trust, still serve an unsigned bundle or a plain .onnx (a signed one must still verify)",
)
@click.option(
    "--workers",
    type=COUNT,
    default=1,
    help="server processes sharing the port, each with its own engine session and a share of the cores (default: 1)",
)
@click.option(
    "--concurrency",
    type=COUNT,
    help="model calls running at once (default: the CPU cores; with --target, cores / its threads)",
)
@click.option(
    "--inline-below-ms",
    type=INLINE_MS,
    default=0.2,
    help="model calls whose p99 is under this run on the event loop, not a thread (default: 0.2; 0: never)",
)
@click.option("--max-batch", type=COUNT, help="micro-batch up to N samples per model call (default: off)")
@click.option(
    "--max-delay-ms",
    type=MILLISECONDS,
    help="with --max-batch: longest an idle engine waits for a batch to fill (default: 0, batch only what "
    "queues behind a busy engine)",
)
@click.option("--log-level", type=Choice(LOG_LEVELS), default="warning", help="server log level (default: warning)")
@_limit(
    "--max-body-bytes",
    type=COUNT,
    default=DEFAULT_MAX_BODY,
    help="largest request body, after decompression (default: 16 MiB)",
)
@_limit(
    "--memory-budget-mb",
    type=POSITIVE,
    default=DEFAULT_MEMORY_BUDGET / (1 << 20),
    metavar="MIB",
    help="memory that request bodies and the JSON and arrays they decode into may hold at once; more waits "
    f"(default: {DEFAULT_MEMORY_BUDGET / (1 << 20):g})",
)
@_seconds("--memory-wait", "longest a request waits for room in the memory budget before a 503")
@_limit(
    "--max-connections",
    type=COUNT,
    default=_DEFAULT["max_connections"],
    help="open connections; past it a new one closes the longest-idle one, or is closed if none is idle "
    f"(default: {_DEFAULT['max_connections']:d})",
)
@_seconds("--idle-timeout", "a connection with no request on it is closed after this")
@_seconds("--header-timeout", "a request head not complete this long after it began gets a 408 and is closed")
@_seconds("--body-timeout", "a request body that does not arrive, or stops, for this long gets a 408")
@telemetry_flags.options
def command(**params: Any) -> int:  # noqa: ANN401  (the flags, by name)
    """Serve MODEL; the exit code."""
    return run(SimpleNamespace(**params))


def cores(args: SimpleNamespace) -> int:
    """The cores each server process has: this process's, shared among ``--workers`` (at least one each)."""
    return max(1, target_flags.cores_here() // getattr(args, "workers", 1))


def settings(args: SimpleNamespace) -> ServerSettings:
    """The server's settings from the flags, checked."""
    if args.max_delay_ms is not None and args.max_batch is None:
        raise ConfigError("--max-delay-ms needs --max-batch: give both, or neither")
    return ServerSettings(
        host=args.host,
        port=args.port,
        concurrency=target_flags.default_concurrency(args, cores(args)),
        inline_below_ms=args.inline_below_ms,
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


def load_options(args: SimpleNamespace, server: ServerSettings) -> LoadOptions:
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
        backend=target_flags.engine_settings(args, server.concurrency, cores(args), state_dir),
    )


def load_for_serving(args: SimpleNamespace, server: ServerSettings, path: Path | None = None) -> Model:
    """The verified, self-tested model (``path``, else MODEL), checked against the server's settings."""
    from edgekit_runtime.model import load

    model = load(path or args.model, load_options(args, server))
    server.check_model(model)
    return model


def run(args: SimpleNamespace) -> int:
    """Check the flags, bind the port, load MODEL (or the committed deploy), serve until stopped."""
    from edgekit_runtime.fleet.agent import READ_ONLY
    from edgekit_runtime.fleet.settings import CONFIG
    from edgekit_runtime.fleet.signed_command import CommandPolicy
    from edgekit_runtime.server.serve import listen, serve
    from edgekit_runtime.telemetry.mqtt import check_name

    if args.model is None:
        raise ConfigError("no model to serve: give MODEL, or 'model' in --config")
    target_flags.warn_mismatch(args.target)
    config, overridden = telemetry_flags.device_config(args)  # before the flags it may override are read
    server = settings(args)
    telemetry_settings = telemetry_flags.telemetry_settings(args)
    command_policy = CommandPolicy(max_age=args.command_max_age)
    sock = listen(server.host, server.port, reuse_port=args.workers > 1)  # a port taken fails before the load
    model, telemetry, ended, pool = _start(args, server, sock, telemetry_settings)
    devices = ", ".join(model.backend.devices)
    options = load_options(args, server)

    notes = target_flags.provider_note(args.target, model.backend.name, model.backend.devices)

    processes = f", {args.workers} workers" if args.workers > 1 else ""

    def ready(url: str) -> None:
        print(f"serving {model.name} {model.version} on {url} ({model.backend.name}, {devices}{processes})", flush=True)
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
    with_agent = _agent_starter(args, options, telemetry, config, ended, command_policy, pool)
    serve(model, server, sock=sock, on_ready=ready, telemetry=telemetry, on_app=with_agent, pool=pool)
    return 0


def _start(
    args: SimpleNamespace, server: ServerSettings, sock: socket.socket, telemetry_settings: TelemetrySettings | None
) -> tuple[Model, Telemetry | None, tuple[Phase, str] | None, WorkerPool | None]:
    """End an unfinished deploy, start the other workers, load the model and make telemetry (the socket is bound).

    Returns the model, telemetry, the deploy the restart ended (to report) and the other workers.
    """
    from edgekit_runtime.fleet import service as fleet
    from edgekit_runtime.telemetry.service import Telemetry

    telemetry, ended, committed, pool = None, None, None, None
    if telemetry_settings is not None and args.workers > 1:  # the inputs a second kept: each worker a share
        recorder = telemetry_settings.recorder
        share = dataclasses.replace(recorder, sample_rate=recorder.sample_rate / args.workers)
        telemetry_settings = dataclasses.replace(telemetry_settings, recorder=share)
    try:
        if telemetry_settings is not None:  # a committed deploy serves instead of MODEL after a restart
            committed, phase, command_id = fleet.recovered(telemetry_settings.state_dir)
            ended = None if phase is None or command_id is None else (phase, command_id)
        if args.workers > 1:  # they load beside this process
            pool = _workers(args, server, sock.getsockname()[1], committed or Path(args.model), telemetry_settings)
        model = load_for_serving(args, server, committed)
        if telemetry_settings is not None:
            telemetry = Telemetry(telemetry_settings, fleet.identity(model), model.reference)
        if pool is not None:
            pool.attach_telemetry(telemetry)
            pool.wait_ready()
    except BaseException:
        if pool is not None:
            pool.join(5.0)
        if telemetry is not None:
            telemetry.stop()
        sock.close()
        raise
    return model, telemetry, ended, pool


def _workers(
    args: SimpleNamespace, server: ServerSettings, port: int, model: Path, telemetry: TelemetrySettings | None
) -> WorkerPool:
    """Start workers 1 to ``--workers`` - 1 on ``port``, serving ``model`` as this process does."""
    from edgekit_runtime.server.worker_spec import WorkerSpec
    from edgekit_runtime.server.workers import WorkerPool

    options = load_options(args, server)
    spec = WorkerSpec(
        server=dataclasses.replace(server, port=port),
        trust=tuple(args.trust),
        require_signature=options.require_signature,
        backend=options.backend,
        model_path=model,
        sample_rate=None if telemetry is None else telemetry.recorder.sample_rate,
    )
    pool = WorkerPool(spec, args.workers)
    pool.start()
    return pool


def _agent_starter(  # noqa: PLR0917  (what serve gathered, handed on)
    args: SimpleNamespace,
    options: LoadOptions,
    telemetry: Telemetry | None,
    config: DeviceConfig | None,
    ended: tuple[Phase, str] | None,
    command_policy: CommandPolicy,
    pool: WorkerPool | None,
) -> Callable[[App], None]:
    """What starts the fleet agent once the app exists (nothing without a broker)."""
    from edgekit_runtime.fleet import service as fleet
    from edgekit_runtime.model import load

    deploys = dataclasses.replace(options, require_signature=True)  # --allow-unsigned is for MODEL alone

    def with_agent(app: App) -> None:
        from edgekit_runtime.server.workers import Workers

        if telemetry is not None and telemetry.publisher is not None:
            fleet.start_agent(
                app if pool is None else Workers(app, pool),
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
