"""How the server runs: where it listens, how much it runs at once, what it accepts. Checked when made."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgekit_runtime.errors import ConfigError

if TYPE_CHECKING:
    from edgekit_runtime.model import Model

DEFAULT_MAX_BODY = 16 << 20
#: room for request bodies and what they decode into: one 16 MiB JSON body of short floats at a time, and
#: under the 512 MiB that examples/raspberrypi's unit allows (docs/runtime.md, "Limits", has the measurements)
DEFAULT_MEMORY_BUDGET = 320 << 20
DEFAULT_MAX_CONNECTIONS = 128
#: file descriptors the process needs besides its connections: the listening socket, logs, the model, telemetry
SPARE_FILES = 32
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def open_file_limit() -> int | None:
    """How many files this process may have open (its soft ``RLIMIT_NOFILE``); ``None``: no limit, or not Unix."""
    try:
        import resource  # Unix only
    except ImportError:  # pragma: no cover
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServerSettings:
    """The server's settings; the ``serve`` command's flags map one to one."""

    #: address to listen on: loopback unless asked, since the server has no authentication
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (the ready line says which)
    port: int = 8080
    #: model calls running at once (threads in the inference pool)
    concurrency: int = field(default_factory=available_cores)
    #: model calls whose 99th percentile is under this many milliseconds run on the event loop (0: never)
    inline_below_ms: float = 0.2
    #: micro-batching: most samples per backend call (``None``: every request runs on its own)
    max_batch: int | None = None
    #: micro-batching: longest a request waits for others to join its batch while the engine is idle (0: it
    #: runs at once, and batches form only from requests queued behind a busy engine)
    max_delay_ms: float = 0.0
    #: largest request body, after decompression
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: seconds a request body may stop arriving (before its first byte, or part-way) before the server answers 408
    body_timeout: float = 30.0
    #: seconds a connection may stay open with no request on it (a new one, or one between requests)
    idle_timeout: float = 5.0
    #: seconds a client has to send a whole request head (request line and headers) once it began sending
    header_timeout: float = 10.0
    #: open connections; a new one past this closes the longest-idle one, or is closed if every one is busy
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: bytes that request bodies, and the JSON and arrays they decode into, may hold at once
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    #: seconds a request waits for room in the memory budget before it is answered 503
    memory_wait: float = 30.0
    log_level: str = "warning"
    #: seconds a SIGTERM waits for requests in flight before it cancels them
    graceful_timeout: int = 30

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, saying which flag to change."""
        if not 0 <= self.port <= 65535:  # noqa: PLR2004
            raise ConfigError(f"--port {self.port} is not a TCP port: use 1 to 65535, or 0 for a free one")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency} would run nothing: use 1 or more")
        if not 0 <= self.inline_below_ms <= 10:  # noqa: PLR2004  (NaN fails this too)
            raise ConfigError(f"--inline-below-ms {self.inline_below_ms:g} is out of range: use 0 (never) to 10")
        if self.max_batch is not None and self.max_batch < 2:  # noqa: PLR2004
            raise ConfigError(f"--max-batch {self.max_batch} batches nothing: use 2 or more, or leave it out")
        if not 0 <= self.max_delay_ms <= 10_000:  # noqa: PLR2004
            raise ConfigError(f"--max-delay-ms {self.max_delay_ms} is out of range: use 0 to 10000 milliseconds")
        if self.max_body_bytes < 1:
            raise ConfigError(f"--max-body-bytes {self.max_body_bytes} accepts no request: use 1 or more")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level {self.log_level} is unknown: use one of {', '.join(LOG_LEVELS)}")
        self._check_limits()
        self._check_budget()

    def _check_limits(self) -> None:
        for flag, seconds in (
            ("--body-timeout", self.body_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--header-timeout", self.header_timeout),
            ("--memory-wait", self.memory_wait),
        ):
            if not 0 < seconds <= 3600:  # noqa: PLR2004  (NaN fails this too)
                raise ConfigError(f"{flag} {seconds:g} is out of range: use more than 0 and at most 3600 seconds")
        if self.max_connections < 1:
            raise ConfigError(f"--max-connections {self.max_connections} accepts no client: use 1 or more")
        files = open_file_limit()
        if files is not None and self.max_connections + SPARE_FILES > files:
            raise ConfigError(
                f"--max-connections {self.max_connections} needs {self.max_connections + SPARE_FILES} open files and "
                f"this process may open {files}: use --max-connections {max(files - SPARE_FILES, 1)} or less, or "
                "raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit)"
            )

    def _check_budget(self) -> None:
        from edgekit_runtime.server.budget import MIB, largest_body, upfront_cost

        need = upfront_cost(self.max_body_bytes)
        if self.memory_budget < need:
            mib = math.ceil(need / MIB)
            raise ConfigError(
                f"--memory-budget-mb {self.memory_budget / MIB:g} cannot hold one {self.max_body_bytes}-byte JSON body "
                f"(--max-body-bytes) as it decodes ({mib} MiB): use --memory-budget-mb {mib} or more, or "
                f"--max-body-bytes {largest_body(self.memory_budget)} or less"
            )

    def check_model(self, model: Model) -> None:
        """Refuse micro-batching for a model whose inputs or outputs do not all have a free first axis."""
        if self.max_batch is None:
            return
        for kind, specs in (("input", model.inputs), ("output", model.outputs)):
            for spec in specs:
                # an output of unknown rank may still be batched: the batcher checks each call's outputs
                if not spec.batched and (kind == "input" or spec.shape is not None):
                    raise ConfigError(
                        f"--max-batch needs every input and output to have a free batch axis, and {kind} "
                        f"'{spec.name}' has shape {spec.shape_text()}: serve this model without --max-batch"
                    )
