"""One step of a command on a device (``edgekit.event/1``), on ``edgekit/{fleet}/{device}/events`` with QoS 1."""

from typing import Annotated

import msgspec
from msgspec import Meta

from edgekit_runtime.contract.commands import MAX_RESEND_RANGES
from edgekit_runtime.contract.statuses import EventCommand, EventStatus
from edgekit_runtime.contract.values import Count, Name, Seconds, Seq, Sha256, Text

EVENT_SCHEMA = "edgekit.event/1"
#: the longest command id an event carries (the agent makes short ones; this bounds what a broken sender can store)
MAX_ID_LENGTH = 128
#: the longest detail an event carries
MAX_DETAIL = 2000

EventId = Annotated[
    str, Meta(min_length=1, max_length=MAX_ID_LENGTH, description="The command's id, as the command carried it.")
]
Detail = Annotated[str, Meta(max_length=MAX_DETAIL, description="What happened, for people.")]


class EventModel(msgspec.Struct, forbid_unknown_fields=True):
    """The model the command is about."""

    name: Text
    version: Text
    sha256: Sha256


class Resent(msgspec.Struct, forbid_unknown_fields=True):
    """What a ``resend`` did: how many windows go again, and the ranges the device no longer keeps."""

    resent: Count
    gone: Annotated[
        list[tuple[Seq, Seq]],
        Meta(max_length=MAX_RESEND_RANGES, description="[FIRST, LAST] ranges asked for that the device no longer has."),
    ]


class Event(msgspec.Struct, tag_field="schema", tag=EVENT_SCHEMA, forbid_unknown_fields=True, omit_defaults=True):
    """One step of a command on a device (edgekit.event/1), on .../events with QoS 1.

    The collector keeps one per (fleet, device, id, status).
    """

    fleet: Name
    device: Name
    id: EventId
    command: Annotated[EventCommand, Meta(description="unknown: a command the device could not read or does not know")]
    status: Annotated[
        EventStatus,
        Meta(
            description="The step: a deploy goes received, fetching, verifying, testing, switching, watching, then "
            "committed or rolled_back; failed, refused and done end a command too."
        ),
    ]
    detail: Detail
    model: Annotated[EventModel | None, Meta(description="The model the command is about; null when it names none.")]
    time: Annotated[Seconds, Meta(description="When the device sent it.")]
    resent: Annotated[
        Resent | None, Meta(description="A resend's outcome, on its done event; absent on every other event.")
    ] = None
