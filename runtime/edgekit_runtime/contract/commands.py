"""The commands a device runs, and the signed envelope they travel in (issue 17).

A command's body is built in three steps, each adding fields: an operator's tool writes the command and its own
fields (``Deploy(source=..., sha256=..., size=...)``, encoded with ``msgspec.to_builtins``); each device's copy
gets an ``id`` (:class:`edgekit.fleet.rollout.Runner`); :func:`edgekit_runtime.fleet.signed_command.seal` adds
what binds it to one use (``fleet``, ``target``, ``issued_at``, ``nonce``) and signs it into a
:class:`SignedCommand`. So a body's Struct leaves the ``id`` and the binding unset until they are added; a signed
body holds them all (the docs' schema says so: :data:`Body.JSON_SCHEMA_RULES`), and a device refuses one that
does not (:class:`~edgekit_runtime.fleet.signed_command.CommandGate`).

The device opens the envelope, checks the binding and runs the body (:mod:`edgekit_runtime.fleet.agent`),
decoding it into its Struct: the bounds below are what it takes. A body may hold fields it does not name: a
device ignores what a newer operator adds.
"""

from typing import Annotated, Any, ClassVar, Union, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from edgekit_runtime.contract.settings import SettingsChange
from edgekit_runtime.contract.values import Name, PositiveCount, Seconds, Seq, Sha256

SIGNED_COMMAND_SCHEMA = "edgekit.signed-command/1"
#: a command's id: what its events name it by
COMMAND_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
#: a command's nonce: 32 random hex digits, taken once
NONCE_PATTERN = r"^[0-9a-f]{32}$"
#: an http(s) URL a device fetches a bundle from
HTTP_URL_PATTERN = r"^https?://\S+$"
#: a deploy's source: ``mqtt:SHA256`` (a bundle published in chunks) or an http(s) URL; never a path on the device
SOURCE_PATTERN = rf"^mqtt:|{HTTP_URL_PATTERN}"
#: longest ``source`` a deploy may name
MAX_SOURCE = 2048
#: longest signature, in base64 characters (an Ed25519 signature is 88)
MAX_SIGNATURE = 128
#: most settings a ``set-config`` names: every setting, and room for a few typos
MAX_SETTINGS = 32
#: most ranges one ``resend`` names
MAX_RESEND_RANGES = 64
#: most windows one ``resend`` asks for, all its ranges together: the work a command can cause is bounded
MAX_RESEND_WINDOWS = 10_000
#: the fields the envelope adds to a command's body: what binds it to one fleet, target, time and use
BINDING = ("fleet", "target", "issued_at", "nonce")

CommandId = Annotated[str, Meta(pattern=COMMAND_ID_PATTERN, description="What the command's events name it by.")]
Nonce = Annotated[str, Meta(pattern=NONCE_PATTERN, description="Taken once: a replayed command runs once.")]


class SignedCommand(msgspec.Struct, tag_field="schema", tag=SIGNED_COMMAND_SCHEMA):
    """A command as it travels: its body as JSON text, signed with Ed25519 over a domain prefix and the body's bytes."""

    body: Annotated[
        str,
        Meta(
            description="The command (Command) as JSON text: the signature covers these exact bytes.",
            extra_json_schema={"contentMediaType": "application/json", "contentSchema": {"$ref": "#/$defs/Command"}},
        ),
    ]
    #: the signing key's id (16 hex digits): the device looks it up among the keys it trusts
    key_id: str
    #: base64 of the 64-byte signature
    signature: Annotated[str, Meta(max_length=MAX_SIGNATURE)]


class Body(msgspec.Struct, tag_field="command", kw_only=True, omit_defaults=True):
    """What every command holds besides its own fields: its id, and what binds it to one fleet, target, time and use.

    Unset until they are added (see the module's docstring); a signed body holds them all.
    """

    #: what the schema says that the Struct leaves to the steps that add them: a signed body holds every one
    JSON_SCHEMA_RULES: ClassVar[dict[str, Any]] = {"required": ["id", *BINDING]}

    id: CommandId | UnsetType = UNSET
    fleet: Name | UnsetType = UNSET
    target: Annotated[str, Meta(description="The topic level it was sent to: a device id, @all or @GROUP.")] | (
        UnsetType
    ) = UNSET
    issued_at: (
        Annotated[
            Seconds,
            Meta(description="When it was signed: a device refuses it once it is too old, or from too far ahead."),
        ]
        | UnsetType
    ) = UNSET
    nonce: Nonce | UnsetType = UNSET


class Deploy(Body, tag="deploy"):
    """Fetch, verify, self-test, switch to and watch a bundle; commit it or roll back."""

    source: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_SOURCE,
            pattern=SOURCE_PATTERN,
            description="mqtt:SHA256 (a bundle published in chunks) or an http(s) URL; never a path on the device.",
        ),
    ]
    sha256: Annotated[Sha256, Meta(description="The bundle file's SHA-256.")]
    size: Annotated[PositiveCount, Meta(description="The bundle file's bytes: the fetch stops past them.")]
    allow_downgrade: Annotated[
        bool, Meta(description="Consent to an older version, or the same version with other contents.")
    ] = False
    allow_schema_change: Annotated[
        bool, Meta(description="Consent to inputs that differ from the serving model's.")
    ] = False


class Rollback(Body, tag="rollback"):
    """Serve the previous committed model again."""


class SetConfig(Body, tag="set-config"):
    """Change settings of the running device, at once and for good (edgekit_runtime.fleet.settings)."""

    #: any JSON object: the operator's tool sends what it is given (a newer device may know more settings), and
    #: the device decodes it key by key into :class:`SettingsChange`, refusing all of it if one key is wrong
    config: Annotated[
        dict[str, Any],
        Meta(
            min_length=1,
            max_length=MAX_SETTINGS,
            description="The settings to change; the device refuses them all if one is unknown or out of range.",
            extra_json_schema={"$ref": f"#/$defs/{SettingsChange.__name__}"},
        ),
    ]


class Status(Body, tag="status"):
    """Say what the device's model store holds (in the done event's detail)."""


class Rebirth(Body, tag="rebirth"):
    """Publish the retained state again."""


class Resend(Body, tag="resend"):
    """Send telemetry windows again that the device still keeps (the collector asks for the gaps it sees)."""

    ranges: Annotated[
        list[tuple[Seq, Seq]],
        Meta(
            min_length=1,
            max_length=MAX_RESEND_RANGES,
            description=f"[FIRST, LAST] seq ranges, each FIRST <= LAST, {MAX_RESEND_WINDOWS} windows at most in all.",
        ),
    ]


#: any command a device runs
Command = Union[Deploy, Rollback, SetConfig, Status, Rebirth, Resend]  # noqa: UP007  (a runtime value, not an annotation)
#: the names of the commands, as the ``command`` field says them
COMMANDS: tuple[str, ...] = tuple(str(body.__struct_config__.tag) for body in get_args(Command))
