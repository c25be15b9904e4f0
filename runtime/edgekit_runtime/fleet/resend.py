"""The ``resend`` command: telemetry windows the collector misses, sent again from the outbox's replay.

A broker's PUBACK does not mean the collector got the window (a broker restarted without persistence forgets
what it queued), so the device keeps sent windows for a while (:class:`~edgekit_runtime.telemetry.outbox.OutboxLimits`
``replay``) and the collector asks for the ``(first, last)`` ranges of ``seq`` it has not stored. Like every
command, the request is signed by the fleet's owner and checked by the agent's gate; its size is bounded
(:data:`~edgekit_runtime.contract.commands.MAX_RESEND_WINDOWS`), and it can do nothing but put windows this device
made back in its own outbox's queue. The ``done`` event says how many go again and which ranges are gone (dropped by
the outbox's bounds, or past the replay period), so the collector counts those as lost instead of asking forever.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from edgekit_runtime.contract.commands import MAX_RESEND_WINDOWS, Resend
from edgekit_runtime.contract.events import Resent
from edgekit_runtime.contract.statuses import DONE
from edgekit_runtime.errors import CommandError
from edgekit_runtime.telemetry.seq_ranges import merged, size

if TYPE_CHECKING:
    from edgekit_runtime.telemetry.outbox import Outbox

logger = logging.getLogger("edgekit_runtime.fleet")


class Emit(Protocol):
    """The agent's :meth:`~edgekit_runtime.fleet.agent.Agent.emit`."""

    def __call__(
        self, command_id: str, phase: str, detail: str = "", command: str | None = None, *, resent: Resent | None = None
    ) -> None:
        """Publish one step of a command."""


class ResendCommand:
    """Runs ``resend`` on the agent's thread: requeue what the outbox keeps, report what it does not."""

    def __init__(self, outbox: Outbox, emit: Emit) -> None:
        """Requeue in ``outbox``; report through ``emit``."""
        self.outbox = outbox
        self.emit = emit

    def run(self, command_id: str, doc: dict[str, Any]) -> None:
        """Check the ranges, requeue them, and report (a ``done`` event with ``resent``)."""
        ranges = ranges_of(command_id, doc)
        done = self.outbox.requeue(ranges)
        gone = size(done.gone)
        detail = f"{done.requeued} windows go again, {done.waiting} were waiting anyway"
        if done.gone:
            shown = ", ".join(f"{first}-{last}" for first, last in done.gone[:5])
            detail += f"; {gone} no longer kept ({shown}{', ...' if len(done.gone) > 5 else ''})"  # noqa: PLR2004
        logger.info("fleet: resend %s: %s", command_id, detail)
        resent = Resent(resent=done.requeued + done.waiting, gone=done.gone)
        self.emit(command_id, DONE, detail, command="resend", resent=resent)


def ranges_of(command_id: str, doc: dict[str, Any]) -> list[tuple[int, int]]:
    """The command's ranges, merged; :class:`CommandError` naming what is wrong with them."""
    try:
        command = msgspec.convert(doc, Resend)
    except msgspec.ValidationError as exc:
        raise CommandError(
            f"the resend command is malformed ({exc}): ranges is a list of 1 to 64 [FIRST, LAST] seq pairs",
            command_id=command_id,
        ) from None
    backwards = [(first, last) for first, last in command.ranges if first > last]
    if backwards:
        first, last = backwards[0]
        raise CommandError(
            f"resend range [{first}, {last}] runs backwards: give [FIRST, LAST] with FIRST <= LAST",
            command_id=command_id,
        )
    ranges = merged(command.ranges)
    if size(ranges) > MAX_RESEND_WINDOWS:
        raise CommandError(
            f"resend asks for {size(ranges)} windows, over the {MAX_RESEND_WINDOWS} one command may: ask in parts",
            command_id=command_id,
        )
    return ranges
