"""A command's steps, as a device reports them in its events, and which of them end it: defined once.

A deploy goes ``received``, ``fetching``, ``verifying``, ``testing``, ``switching``, ``watching``, then
``committed`` or ``rolled_back`` (:class:`Phase`, the deployer's own states); ``failed`` and ``refused`` end any
command, and ``done`` ends a command other than a deploy or rollback that went well. The device's agent writes
these, the host's collector checks them and its operator waits for the final ones.
"""

from enum import Enum
from typing import TYPE_CHECKING, Literal

from edgekit_runtime.contract.commands import COMMANDS


class Phase(str, Enum):
    """Where a deploy is; the ``status`` of its events."""

    RECEIVED = "received"
    FETCHING = "fetching"
    VERIFYING = "verifying"
    TESTING = "testing"
    SWITCHING = "switching"
    WATCHING = "watching"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    REFUSED = "refused"


#: the status of a command other than a deploy or rollback that ended well
DONE = "done"
#: every status, in the order a deploy goes through them, then ``done``
EVENT_STATUSES: tuple[str, ...] = (*(phase.value for phase in Phase), DONE)
#: the statuses that end a command
FINAL_STATUSES: tuple[str, ...] = (
    Phase.COMMITTED.value,
    Phase.ROLLED_BACK.value,
    Phase.REFUSED.value,
    Phase.FAILED.value,
    DONE,
)
#: an event's ``command`` for a command the device could not read, or does not know
UNKNOWN = "unknown"
#: what an event's ``command`` may say
EVENT_COMMANDS: tuple[str, ...] = (*COMMANDS, UNKNOWN)

if TYPE_CHECKING:
    EventStatus = str
    EventCommand = str
else:  # the same tuples as types: msgspec checks them, and the schema lists them
    EventStatus = Literal[EVENT_STATUSES]
    EventCommand = Literal[EVENT_COMMANDS]
