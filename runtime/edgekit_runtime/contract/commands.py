"""The commands a device runs, and the signed envelope they travel in (issue 17).

An operator's tool writes a body (``{"id", "command": "deploy", ...}``);
:func:`edgekit_runtime.fleet.signed_command.seal` adds what binds it to one use (``fleet``, ``target``,
``issued_at``, ``nonce``) and signs it into a :class:`SignedCommand`. The device opens the envelope, checks the
binding (:class:`~edgekit_runtime.fleet.signed_command.CommandGate`) and runs the body
(:mod:`edgekit_runtime.fleet.agent`). A body may hold fields it does not name: a device ignores what a newer
operator adds.
"""

from typing import Annotated, Any, Union, get_args

import msgspec
from msgspec import Meta

from edgekit_runtime.contract.values import Name, PositiveCount, Seconds, Sha256

SIGNED_COMMAND_SCHEMA = "edgekit.signed-command/1"
#: a command's id: what its events name it by
COMMAND_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
#: a command's nonce: 32 random hex digits, taken once
NONCE_PATTERN = r"^[0-9a-f]{32}$"
#: longest ``source`` a deploy may name
MAX_SOURCE = 2048
#: longest signature, in base64 characters (an Ed25519 signature is 88)
MAX_SIGNATURE = 128

CommandId = Annotated[str, Meta(pattern=COMMAND_ID_PATTERN, description="What the command's events name it by.")]


class SignedCommand(msgspec.Struct, tag_field="schema", tag=SIGNED_COMMAND_SCHEMA):
    """A command as it travels: its body as JSON text, signed with Ed25519 over a domain prefix and the body's bytes."""

    body: str
    #: the signing key's id (16 hex digits): the device looks it up among the keys it trusts
    key_id: str
    #: base64 of the 64-byte signature
    signature: Annotated[str, Meta(max_length=MAX_SIGNATURE)]


class Body(msgspec.Struct, tag_field="command", kw_only=True):
    """What every signed body holds: the command's id, and what binds it to one fleet, target, time and use."""

    id: CommandId
    fleet: Name
    #: the topic level it was sent to: a device id, ``@all`` or ``@GROUP``
    target: str
    #: when it was signed: a device refuses it once it is too old, or from too far in the future
    issued_at: Seconds
    #: recorded by the device before the command runs: a replayed command runs once
    nonce: Annotated[str, Meta(pattern=NONCE_PATTERN)]


class Deploy(Body, tag="deploy"):
    """Fetch, verify, self-test, switch to and watch a bundle; commit it or roll back."""

    #: ``mqtt:SHA256`` (a bundle published in chunks) or an http(s) URL; never a path on the device
    source: Annotated[str, Meta(min_length=1, max_length=MAX_SOURCE)]
    #: the bundle file's SHA-256
    sha256: Sha256
    #: the bundle file's bytes: the fetch stops past them
    size: PositiveCount
    #: consent to an older version, or the same version with other contents
    allow_downgrade: bool = False
    #: consent to inputs that differ from the serving model's
    allow_schema_change: bool = False


class Rollback(Body, tag="rollback"):
    """Serve the previous committed model again."""


class SetConfig(Body, tag="set-config"):
    """Change settings of the running device, at once and for good (``edgekit_runtime.fleet.settings``)."""

    config: dict[str, Any]


class Status(Body, tag="status"):
    """Say what the device's model store holds (in the ``done`` event's detail)."""


class Rebirth(Body, tag="rebirth"):
    """Publish the retained state again."""


#: any command a device runs
Command = Union[Deploy, Rollback, SetConfig, Status, Rebirth]  # noqa: UP007  (a runtime value, not an annotation)
#: the names of the commands, as the ``command`` field says them
COMMANDS: tuple[str, ...] = tuple(str(body.__struct_config__.tag) for body in get_args(Command))
