"""A device's retained state (``edgekit.state/1``) on ``edgekit/{fleet}/{device}/state``.

``online`` on connect; ``offline`` in the Last Will (reason ``lost``) and on a clean stop (reason ``stopped``).
A fleet agent adds its groups, whether it takes commands, and the settings ``set-config`` changes
(:class:`~edgekit_runtime.contract.settings.DeviceSettings`). The device's
:class:`~edgekit_runtime.telemetry.channel.Channel` builds each message from :class:`State`.
"""

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from edgekit_runtime.contract.settings import DeviceSettings
from edgekit_runtime.contract.telemetry import ModelIdentity, RuntimeInfo
from edgekit_runtime.contract.values import Name, Seconds

STATE_SCHEMA = "edgekit.state/1"
#: whether the device is connected
DeviceStatus = Literal["online", "offline"]


class TelemetryInfo(msgspec.Struct, forbid_unknown_fields=True):
    """How the device cuts windows."""

    interval: Annotated[float, Meta(gt=0, description="Seconds per window.")]


class State(msgspec.Struct, tag_field="schema", tag=STATE_SCHEMA, forbid_unknown_fields=True):
    """The device's retained state (edgekit.state/1).

    online on connect; offline in the Last Will (reason lost) and on a clean stop (reason stopped). A serving
    device always says its model, runtime and telemetry; a bare publisher (a test's, a tool's) may leave them out.
    """

    #: what the schema adds that a Struct cannot say: an offline state says why, an online one does not
    JSON_SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"status": {"const": "offline"}}},
        "then": {"required": ["reason"]},
        "else": {"not": {"required": ["reason"]}},
    }

    fleet: Name
    device: Name
    status: DeviceStatus
    since: Annotated[Seconds, Meta(description="When the message was made.")]
    model: ModelIdentity | UnsetType = UNSET
    runtime: RuntimeInfo | UnsetType = UNSET
    telemetry: TelemetryInfo | UnsetType = UNSET
    reason: Literal["lost", "stopped"] | UnsetType = UNSET
    groups: Annotated[list[Name], Meta(description="The device's --group names (a fleet agent's state only).")] | (
        UnsetType
    ) = UNSET
    commands: (
        Annotated[
            Literal["signed", "refused: no --trust"],
            Meta(
                description="Whether the fleet agent takes commands: signed ones (it trusts keys), or none (started "
                "without --trust)."
            ),
        ]
        | UnsetType
    ) = UNSET
    config: DeviceSettings | UnsetType = UNSET

    def __post_init__(self) -> None:
        """An offline state says why (``reason``); an online one does not."""
        if (self.status == "offline") == (self.reason is UNSET):
            raise ValueError("an offline state needs a reason (lost, stopped), and an online one has none")
