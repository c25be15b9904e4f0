"""The fleet agent wired to a running server: the deployer swaps the app's model and telemetry's identity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgekit_runtime.fleet.agent import Agent
from edgekit_runtime.fleet.chunks import ChunkFetcher
from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.deploy import Deployer, recover
from edgekit_runtime.fleet.deploy_command import DEFAULT_MAX_BUNDLE
from edgekit_runtime.fleet.deploy_health import Health, HealthPolicy
from edgekit_runtime.fleet.models import ModelStore
from edgekit_runtime.fleet.resend import ResendCommand
from edgekit_runtime.fleet.settings import ConfigFile, DeviceConfig, SetConfig
from edgekit_runtime.fleet.signed_command import CommandGate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgekit_runtime.contract.statuses import Phase
    from edgekit_runtime.fleet.signed_command import CommandPolicy
    from edgekit_runtime.model import Model
    from edgekit_runtime.signing import TrustedKey
    from edgekit_runtime.telemetry.service import Telemetry

MODELS = "models"


def identity(model: Model) -> dict[str, Any]:
    """How windows, state and events name a model."""
    return {"name": model.name, "version": model.version, "sha256": model.sha256, "backend": model.backend.name}


class Serving(Protocol):
    """The server the agent steers.

    One app (:class:`~edgekit_runtime.server.app.App`), or several workers
    (:class:`~edgekit_runtime.server.workers.Workers`).
    """

    @property
    def model(self) -> Model:
        """The model new requests go to."""

    def health(self) -> tuple[int, int, float, int]:
        """Requests, 5xx, seconds and 4xx on the model serving now, since it was switched in."""

    def swap_from_thread(self, model: Model) -> None:
        """Serve ``model`` from the next request on (a :class:`ConfigError` if it cannot)."""


class AppProbe:
    """The deploy's health numbers: the server's inference counters."""

    def __init__(self, app: Serving) -> None:
        """Read ``app``'s counters."""
        self.app = app

    def snapshot(self) -> Health:
        """The counters now."""
        requests, errors, seconds, client_errors = self.app.health()
        return Health(int(requests), int(errors), float(seconds), int(client_errors))


def model_store(state_dir: Path) -> ModelStore:
    """The store in the state directory."""
    return ModelStore(Path(state_dir) / MODELS)


def recovered(state_dir: Path) -> tuple[Path | None, Phase | None, str | None]:
    """Before loading anything: end an unfinished deploy; the committed bundle to serve, if there is one."""
    return recover(model_store(state_dir))


def start_agent(
    app: Serving,
    telemetry: Telemetry,
    *,
    open_model: Callable[[Path], Model],
    groups: Sequence[str] = (),
    policy: HealthPolicy | None = None,
    ended: tuple[Phase, str] | None = None,
    chunk_stall: float = 30.0,
    config: DeviceConfig | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    command_policy: CommandPolicy | None = None,
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE,
) -> Agent:
    """Start the agent on ``telemetry``'s MQTT connection; ``ended``: a deploy the restart ended, to report.

    ``config``: the settings in effect (``policy`` among them), which ``set-config`` changes; ``trusted_keys``: who
    may command this device (none: it refuses every command, and still sends telemetry); ``open_model`` must
    require a signature by one of them.
    """
    publisher = telemetry.publisher
    if publisher is None:  # pragma: no cover  (the command starts the agent only with --mqtt)
        raise RuntimeError("the fleet agent needs a broker")

    def swap(model: Model) -> None:
        app.swap_from_thread(model)
        telemetry.set_model(identity(model), model.reference)

    deployer = Deployer(
        model_store(telemetry.settings.state_dir),
        app.model,
        open_model=open_model,
        swap=swap,
        probe=AppProbe(app),
        emit=lambda *_: None,  # the agent sets its own
        policy=policy,
        max_bundle_bytes=max_bundle_bytes,
    )
    store = deployer.store
    chunks = ChunkFetcher(publisher, publisher.topics.fleet, store.root, stall=chunk_stall)
    gate = None
    if trusted_keys:
        journal = CommandJournal(telemetry.settings.state_dir)
        gate = CommandGate(trusted_keys, fleet=publisher.topics.fleet, journal=journal, policy=command_policy)
    agent = Agent(publisher, publisher.topics, deployer, groups, chunks, gate=gate, max_bundle_bytes=max_bundle_bytes)
    if config is not None:
        file = ConfigFile(telemetry.settings.state_dir)
        set_config = SetConfig(config, file, deployer=deployer, telemetry=telemetry, state=publisher, emit=agent.emit)
        agent.commands["set-config"] = set_config.run
    agent.commands["resend"] = ResendCommand(telemetry.outbox, agent.emit).run
    if ended is not None:
        phase, command_id = ended
        agent.emit(command_id, phase, "the device restarted during the deploy")
    agent.start()
    return agent
