"""How the server runs: where it listens, how much it runs at once, what it accepts. Checked when made."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgekit_runtime.errors import ConfigError

if TYPE_CHECKING:
    from edgekit_runtime.model import Model

DEFAULT_MAX_BODY = 16 << 20
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


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
    #: micro-batching: most samples per backend call (``None``: every request runs on its own)
    max_batch: int | None = None
    #: micro-batching: longest a request waits for others to join its batch while the engine is idle (0: it
    #: runs at once, and batches form only from requests queued behind a busy engine)
    max_delay_ms: float = 0.0
    #: largest request body, after decompression
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: seconds a request body may stop arriving part-way before the server answers 408
    body_timeout: float = 30.0
    log_level: str = "warning"
    #: seconds a SIGTERM waits for requests in flight before it cancels them
    graceful_timeout: int = 30

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, saying which flag to change."""
        if not 0 <= self.port <= 65535:  # noqa: PLR2004
            raise ConfigError(f"--port {self.port} is not a TCP port: use 1 to 65535, or 0 for a free one")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency} would run nothing: use 1 or more")
        if self.max_batch is not None and self.max_batch < 2:  # noqa: PLR2004
            raise ConfigError(f"--max-batch {self.max_batch} batches nothing: use 2 or more, or leave it out")
        if not 0 <= self.max_delay_ms <= 10_000:  # noqa: PLR2004
            raise ConfigError(f"--max-delay-ms {self.max_delay_ms} is out of range: use 0 to 10000 milliseconds")
        if self.max_body_bytes < 1:
            raise ConfigError(f"--max-body-bytes {self.max_body_bytes} accepts no request: use 1 or more")
        if self.body_timeout <= 0:
            raise ConfigError(
                f"body_timeout {self.body_timeout} would refuse every body sent in parts: use seconds > 0"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level {self.log_level} is unknown: use one of {', '.join(LOG_LEVELS)}")

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
