"""``edgekit-runtime bench MODEL``: measure a bundle on this device (:mod:`edgekit_runtime.bench_measure`)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from edgekit_runtime.cli import config_file, target_flags
from edgekit_runtime.cli.params import PATH
from edgekit_runtime.errors import ConfigError


@click.command(
    "bench",
    short_help="measure a bundle here: latency by threads, throughput, RSS, cold start",
    help="Measure MODEL on this device: latency p50/p99 at 1..N engine threads, throughput at a batch size, the "
    "serving process's RSS and its cold start. Prints a table and writes JSON for edgekit bench-compare.\n\n"
    "MODEL is an .edgebundle, or a plain .onnx file.",
)
@click.argument("model", type=PATH)
@click.option(
    "--threads", type=int, help="latency at 1..N engine threads (default: the --target's, else this device's cores)"
)
@target_flags.options
@click.option("--batch", type=int, default=8, help="samples per call for throughput (default: 8)")
@click.option("--seconds", type=float, default=2.0, help="seconds per measurement (default: 2)")
@click.option("--cold-starts", type=int, default=3, help="fresh serve processes to time; 0 skips them (default: 3)")
@click.option(
    "--trust", multiple=True, type=PATH, metavar="KEYFILE_OR_DIR", callback=config_file.added, help="as for serve"
)
@click.option("--allow-unsigned", is_flag=True, help="as for serve")
@click.option(
    "-o", "--output", type=PATH, help="the JSON file (default: bench-ARCH-Ncore.json, e.g. bench-aarch64-4core.json)"
)
def command(**params: Any) -> int:  # noqa: ANN401  (the flags, by name)
    """Bench MODEL; the exit code."""
    return run(SimpleNamespace(**params))


def run(args: SimpleNamespace) -> int:
    """Measure, print the table, write the JSON."""
    from edgekit_runtime.bench import render
    from edgekit_runtime.bench_measure import BenchConfig, measure
    from edgekit_runtime.model import LoadOptions
    from edgekit_runtime.platform_facts import gather
    from edgekit_runtime.signing import load_trusted_keys
    from edgekit_runtime.telemetry.service import default_state_dir

    if args.allow_unsigned and not args.trust:
        raise ConfigError("--allow-unsigned only matters with --trust: leave it out, or add --trust KEYFILE")
    platform = gather(probe=False)
    output = args.output or Path(f"bench-{platform.arch}-{platform.cores}core.json")
    if not output.parent.is_dir():  # before minutes of measuring, not after
        raise ConfigError(f"-o {output}: cannot write it (no folder {output.parent}): create it, or pick another")
    target_flags.warn_mismatch(args.target, platform)
    threads = args.target.threads_here(platform.cores) if args.target is not None else platform.cores
    config = BenchConfig(
        threads=threads if args.threads is None else args.threads,
        batch=args.batch,
        seconds=args.seconds,
        cold_starts=args.cold_starts,
    )
    options = LoadOptions(
        trusted_keys=load_trusted_keys(args.trust),
        require_signature=False if args.allow_unsigned else None,
        backend=target_flags.engine_settings(args, 1, platform.cores, default_state_dir()),
    )
    serve_args = tuple(a for key in args.trust for a in ("--trust", str(key)))
    serve_args += ("--allow-unsigned",) if args.allow_unsigned else ()
    serve_args += target_flags.as_flags(args)
    say = functools.partial(print, file=sys.stderr)
    doc = measure(args.model, config, options, platform, serve_args=serve_args, say=say, target=args.target)
    try:
        output.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"-o {output}: cannot write it ({exc.strerror or exc})") from None
    print(render(doc))
    print(f"wrote {output}")
    return 0
