"""What a command's events say, defined once: the schema, the commands, the statuses (issue 18, in part).

The device's agent writes events with these values; the host's collector checks them and its operator waits for
the final ones, importing this module rather than keeping lists of its own.
"""

from __future__ import annotations

from edgekit_runtime.fleet.deploy import Phase

EVENT_SCHEMA = "edgekit.event/1"
#: the commands a device runs
COMMANDS = ("deploy", "rollback", "set-config", "status", "rebirth")
#: an event's ``command`` for a command the device could not read, or does not know
UNKNOWN = "unknown"
EVENT_COMMANDS = (*COMMANDS, UNKNOWN)
#: the status of a command other than a deploy or rollback that ended well
DONE = "done"
#: every status, in the order a deploy goes through them, then ``done``
EVENT_STATUSES = (*(phase.value for phase in Phase), DONE)
#: the statuses that end a command
FINAL_STATUSES = (Phase.COMMITTED.value, Phase.ROLLED_BACK.value, Phase.REFUSED.value, Phase.FAILED.value, DONE)
