"""What the serving process tells a worker process of ``serve --workers`` before it starts (:mod:`.worker`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit_runtime.backends.base import BackendSettings
    from edgekit_runtime.model import LoadOptions
    from edgekit_runtime.server.settings import ServerSettings


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker is told before it starts: what the ``serve`` command made of its flags, and more."""

    #: the server's settings, the port the serving process bound among them (the kernel's for ``--port 0``)
    server: ServerSettings
    #: how bundles load (:class:`~edgekit_runtime.model.LoadOptions`, less the keys: they go as files)
    trust: tuple[Path, ...]
    require_signature: bool | None
    backend: BackendSettings
    #: the bundle to serve (the command's MODEL, or the committed deploy)
    model_path: Path
    #: inputs kept a second for telemetry by this worker (its share); ``None``: no telemetry
    sample_rate: float | None
    #: 1, 2, …: the serving process itself is worker 0
    index: int = 0

    def load_options(self, *, deploy: bool = False) -> LoadOptions:
        """How the bundle loads; ``deploy``: as the fleet agent's deploys do (a signature required)."""
        from edgekit_runtime.model import LoadOptions
        from edgekit_runtime.signing import load_trusted_keys

        required = True if deploy else self.require_signature
        return LoadOptions(load_trusted_keys(self.trust), require_signature=required, backend=self.backend)
