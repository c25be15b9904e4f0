"""Fleet commands signed by the fleet's owner: the envelope both sides use, and the device's checks (issue 17).

A command travels as an envelope, one JSON object::

    {"schema": "edgekit.signed-command/1",
     "body": "<the command, as JSON text>",
     "key_id": "<16 hex digits>",
     "signature": "<base64 of 64 bytes>"}

``signature`` is Ed25519 over :data:`DOMAIN` followed by the body's exact UTF-8 bytes. The domain prefix keeps a
command's signature apart from a bundle manifest's made with the same key: neither can stand for the other. The
body is the command (``{"id", "command", ...}``, see :mod:`edgekit_runtime.fleet.agent`) plus four fields that
bind it to one use (both defined in :mod:`edgekit_runtime.contract.commands`):

``fleet``, ``target``
    the fleet and the topic level it was sent to (a device id, ``@all``, ``@GROUP``). A command copied onto another
    device's or group's topic, or another fleet's, is refused: TUF's *mix-and-match*.
``issued_at``
    Unix seconds when it was signed. It is refused when older than :attr:`CommandPolicy.max_age` (default 10
    minutes) or from more than :attr:`CommandPolicy.max_skew` in the future: a command held back and replayed
    later (TUF's *freeze* and *rollback* of commands) cannot run.
``nonce``
    32 random hex digits. The device records each nonce before it runs the command and keeps it, on disk, until
    the command has expired (:class:`~edgekit_runtime.fleet.command_journal.CommandJournal`): a command replayed,
    or retained on the broker and delivered again after every restart, runs once.

The device checks, in order: size, envelope, signature against its trusted keys (the same ``--trust`` keys that
verify bundles), body, fleet and target, age, nonce. Each refusal is a :class:`CommandError` saying why and
what to do; the agent reports it as a ``refused`` event.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from edgekit_runtime.contract.commands import (
    BINDING,
    COMMAND_ID_PATTERN,
    NONCE_PATTERN,
    SIGNED_COMMAND_SCHEMA,
    SignedCommand,
)
from edgekit_runtime.errors import CommandError, ConfigError
from edgekit_runtime.signing import SIGNATURE_BYTES, key_id

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgekit_runtime.fleet.command_journal import CommandJournal
    from edgekit_runtime.signing import TrustedKey

#: the envelope's schema (:class:`~edgekit_runtime.contract.commands.SignedCommand`)
SCHEMA = SIGNED_COMMAND_SCHEMA
#: what the signature covers before the body: a command's signature can never pass for a manifest's
DOMAIN = b"edgekit signed command v1\n"
NONCE = re.compile(NONCE_PATTERN)
#: a command's id: what events name it by
COMMAND_ID = re.compile(COMMAND_ID_PATTERN)
_DAY = 86_400.0
_KIB = 1 << 10


@dataclass(frozen=True)
class CommandPolicy:
    """How old a command may be, and how large."""

    #: seconds after ``issued_at`` that a command is still taken
    max_age: float = 600.0
    #: seconds ``issued_at`` may lie in the future (the operator's clock ahead of the device's)
    max_skew: float = 120.0
    #: bytes of one command message, envelope and all
    max_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        """Refuse policies that cannot work."""
        if not 1 <= self.max_age <= 7 * _DAY:
            raise ConfigError(f"--command-max-age {self.max_age:g} is out of range: use 1 to 604800 seconds")
        if not 0 <= self.max_skew <= _DAY:
            raise ConfigError(f"command max_skew {self.max_skew:g} is out of range: use 0 to 86400 seconds")
        if not _KIB <= self.max_bytes <= 16 << 20:
            raise ConfigError(f"command max_bytes {self.max_bytes} is out of range: use 1 KiB to 16 MiB")

    @property
    def keep_for(self) -> float:
        """Seconds a nonce must be remembered: until no clock could still take its command."""
        return self.max_age + self.max_skew


def seal(
    body: Mapping[str, Any],
    key: Ed25519PrivateKey,
    *,
    fleet: str,
    target: str,
    now: float | None = None,
    nonce: str | None = None,
) -> bytes:
    """The envelope of ``body`` sent to ``target`` in ``fleet``, signed with ``key`` (the operator's side)."""
    bound = {
        **body,
        "fleet": fleet,
        "target": target,
        "issued_at": time.time() if now is None else now,
        "nonce": nonce or secrets.token_hex(16),
    }
    text = orjson.dumps(bound)
    envelope = SignedCommand(
        body=text.decode(),
        key_id=key_id(key.public_key()),
        signature=base64.b64encode(key.sign(DOMAIN + text)).decode(),
    )
    return msgspec.json.encode(envelope)


class CommandGate:
    """The device's side: opens an envelope and returns the command, or raises :class:`CommandError`."""

    def __init__(
        self,
        keys: Sequence[TrustedKey],
        *,
        fleet: str,
        journal: CommandJournal,
        policy: CommandPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Take commands signed by ``keys`` and sent to ``fleet``; ``journal`` remembers the nonces taken."""
        if not keys:
            raise ConfigError("a command gate needs trusted keys: start the device with --trust KEYFILE")
        self.keys = {k.key_id: k for k in keys}
        self.fleet = fleet
        self.journal = journal
        self.policy = policy or CommandPolicy()
        self.clock = clock

    def open(self, payload: bytes, target: str) -> dict[str, Any]:
        """The command in ``payload``, which arrived on ``target``'s topic; :class:`CommandError` saying why not."""
        if len(payload) > self.policy.max_bytes:
            raise CommandError(
                f"a command of {len(payload)} bytes is over the {self.policy.max_bytes}-byte limit: refused unread"
            )
        envelope = _json_object(payload)
        if envelope is None:
            raise CommandError("a command that is not a JSON object was refused")
        if envelope.get("schema") != SCHEMA:
            raise CommandError(
                f"commands must be signed ({SCHEMA}): send them with edgekit fleet … --sign-key KEY, whose .pub "
                "this device trusts",
                command_id=_id_of(envelope),
            )
        body_text, kid, signature = _parts(envelope)
        body = _json_object(body_text)
        command_id = _id_of(body) if body is not None else None
        self._verify(kid, signature, body_text, command_id)
        if body is None:
            raise CommandError("the signed body of a command is not a JSON object: send it with edgekit fleet")
        self._check_binding(body, target, command_id)
        return body

    def _verify(self, kid: str, signature: bytes, body: bytes, command_id: str | None) -> None:
        from cryptography.exceptions import InvalidSignature

        key = self.keys.get(kid)
        if key is None:
            raise CommandError(
                f"the command is signed by key {kid[:16]}, which this device does not trust (trusted: "
                f"{', '.join(self.keys)}): sign with the fleet owner's key",
                command_id=command_id,
            )
        try:
            key.key.verify(signature, DOMAIN + body)
        except InvalidSignature:
            raise CommandError(
                f"the command's signature by key {kid} does not match its body: it was changed after signing",
                command_id=command_id,
            ) from None

    def _check_binding(self, body: dict[str, Any], target: str, command_id: str | None) -> None:
        if command_id is None:
            raise CommandError("the signed command has no usable id (1 to 128 of A-Z a-z 0-9 . _ : @ -)")
        fleet, sent_to, issued, nonce = (body.get(name) for name in BINDING)
        if fleet != self.fleet or sent_to != target:
            raise CommandError(
                f"the command was signed for {_short(fleet)}/{_short(sent_to)}, not {self.fleet}/{target} where it "
                "arrived: refused (a command cannot be moved to another device, group or fleet)",
                command_id=command_id,
            )
        if isinstance(issued, bool) or not isinstance(issued, (int, float)) or not math.isfinite(issued):
            raise CommandError(
                "the signed command has no issued_at time: send it with edgekit fleet", command_id=command_id
            )
        now = self.clock()
        if issued < now - self.policy.max_age:
            raise CommandError(
                f"the command expired: issued {now - issued:.0f} s ago, more than the {self.policy.max_age:g} s a "
                "command is taken for; send it again (and check the clocks if it was just sent)",
                command_id=command_id,
            )
        if issued > now + self.policy.max_skew:
            raise CommandError(
                f"the command was issued {issued - now:.0f} s in the future by this device's clock: check the "
                "device's and the operator's clocks (NTP)",
                command_id=command_id,
            )
        if not isinstance(nonce, str) or not NONCE.match(nonce):
            raise CommandError("the signed command has no nonce: send it with edgekit fleet", command_id=command_id)
        try:
            taken = self.journal.take(nonce, float(issued), keep_until=float(issued) + self.policy.keep_for)
        except CommandError as exc:
            raise CommandError(str(exc), command_id=command_id) from None
        if not taken:
            raise CommandError(
                "the command was taken before (its nonce is known): a replayed or retained command runs once",
                command_id=command_id,
            )


def _json_object(data: bytes | str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _parts(envelope: dict[str, Any]) -> tuple[bytes, str, bytes]:
    try:
        parts = msgspec.convert(envelope, SignedCommand)
    except msgspec.ValidationError:
        raise CommandError(
            f"a {SCHEMA} envelope needs 'body', 'key_id' and 'signature' strings: send it with edgekit fleet"
        ) from None
    try:
        signature = base64.b64decode(parts.signature, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != SIGNATURE_BYTES:
        raise CommandError("the command's signature is malformed: send it with edgekit fleet")
    return parts.body.encode(), parts.key_id, signature


def readable_id(payload: bytes) -> str | None:
    """The id a command message names, signed or not, to refuse it by name (no signature is checked)."""
    doc = _json_object(payload)
    if doc is not None and isinstance(doc.get("body"), str):  # an envelope
        doc = _json_object(doc["body"])
    return None if doc is None else _id_of(doc)


def _id_of(doc: dict[str, Any]) -> str | None:
    """The command's id when it is one an event can carry."""
    value = doc.get("id")
    return value if isinstance(value, str) and COMMAND_ID.match(value) else None


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."  # noqa: PLR2004
