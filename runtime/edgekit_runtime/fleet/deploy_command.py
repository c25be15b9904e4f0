"""A deploy command, decoded, and whether the bundle it brings may replace the model serving now.

A deploy's body is decoded into the contract's :class:`~edgekit_runtime.contract.commands.Deploy`, whose types
and bounds say what each field may be (:meth:`DeployCommand.from_body`); a field that is not is refused in the
words of :data:`REFUSALS`. Its source is the chunks of an ``mqtt:SHA256`` bundle or an http(s) URL, never a path
on the device: a path in a command from the network could read any file. Its size must be within this device's
limit (``--max-bundle-mb``).

Before anything switches, a verified candidate is judged against the model serving now (:func:`judge_candidate`):
an older version, or the same version with other contents, is refused unless the signed command says
``allow_downgrade`` (TUF's *rollback attack*); inputs that differ from the serving model's (names, types, shapes:
every client would get 400) are refused unless it says ``allow_schema_change``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from edgekit_runtime.contract.commands import HTTP_URL_PATTERN, MAX_SOURCE, Deploy
from edgekit_runtime.contract.failures import failed_at
from edgekit_runtime.errors import CommandError
from edgekit_runtime.fleet.versions import compare_versions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit_runtime.model import Model

#: a deploy's bundle limit when the device names none (``--max-bundle-mb``)
DEFAULT_MAX_BUNDLE = 1 << 30
#: a source the device fetches itself
HTTP_URL = re.compile(HTTP_URL_PATTERN)
#: the version of a model that is not a bundle (a plain .onnx): anything may replace it
UNVERSIONED = "unversioned"
#: what a deploy's field must be, as a refusal says it (a source that is text of the right length, but neither
#: ``mqtt:`` nor http(s), is refused as a path: :func:`_refusal`)
REFUSALS = {
    "source": f"a deploy needs 'source', mqtt:SHA256 or an http(s) URL of at most {MAX_SOURCE} characters",
    "sha256": "a deploy needs 'sha256', the bundle file's (64 lowercase hex digits)",
    "size": "a deploy needs 'size', the bundle file's bytes (a whole number > 0)",
    "allow_downgrade": "allow_downgrade and allow_schema_change are true or false",
    "allow_schema_change": "allow_downgrade and allow_schema_change are true or false",
}


@dataclass(frozen=True)
class DeployCommand:
    """What to deploy: ``source`` (``mqtt:SHA256`` or an http(s) URL), the bundle file's ``sha256`` and ``size``.

    ``allow_downgrade`` and ``allow_schema_change`` are the signed command's explicit consent to an older version
    and to other inputs (:func:`judge_candidate`).
    """

    id: str
    source: str
    sha256: str | None = None
    #: bytes of the bundle file: the fetch stops past it
    size: int | None = None
    allow_downgrade: bool = False
    allow_schema_change: bool = False

    @classmethod
    def from_body(
        cls, command_id: str, body: Mapping[str, object], *, max_bytes: int = DEFAULT_MAX_BUNDLE
    ) -> DeployCommand:
        """A deploy's body decoded; :class:`CommandError` naming what is wrong, or a bundle over ``max_bytes``."""
        try:
            deploy = msgspec.convert(body, Deploy)
        except msgspec.ValidationError as exc:
            raise CommandError(_refusal(exc, body), command_id=command_id) from None
        if deploy.size > max_bytes:
            raise CommandError(
                f"the bundle is {deploy.size} bytes, over this device's {max_bytes}-byte limit: raise "
                "--max-bundle-mb on the device, or deploy a smaller bundle",
                command_id=command_id,
            )
        return cls(
            command_id, deploy.source, deploy.sha256, deploy.size, deploy.allow_downgrade, deploy.allow_schema_change
        )


def _refusal(error: msgspec.ValidationError, body: Mapping[str, object]) -> str:
    """What a refused deploy says: the words of :data:`REFUSALS` for the field ``error`` names."""
    steps = failed_at(error)
    field = steps[0] if steps and isinstance(steps[0], str) else None
    if field == "source" and "regex" in str(error):  # text of the right length, but no source a device fetches
        return (
            f"a deploy's source is mqtt:SHA256 or an http(s) URL, not {str(body['source'])[:80]!r}: a path on the "
            "device is never taken from the network"
        )
    return REFUSALS.get(field or "", f"the deploy command is malformed ({error}): send it with edgekit fleet")


def judge_candidate(serving: Model, candidate: Model, command: DeployCommand) -> str | None:
    """Why ``candidate`` may not replace ``serving`` under ``command``, or ``None``."""
    if not command.allow_downgrade and serving.version != UNVERSIONED:
        order = compare_versions(candidate.version, serving.version)
        if order is None:
            return (
                f"version {candidate.version!r} cannot be compared with {serving.version!r} serving now: give bundles "
                "versions such as 1.2.0, or deploy with --allow-downgrade to replace it anyway"
            )
        if order < 0:
            return (
                f"{candidate.name} {candidate.version} is older than {serving.name} {serving.version} serving now: "
                "refusing a downgrade; deploy with --allow-downgrade if that is meant"
            )
        if order == 0 and candidate.sha256 != serving.sha256:
            return (
                f"{candidate.name} {candidate.version} is the version serving now, with another model: give the new "
                "bundle a higher version, or deploy with --allow-downgrade to replace it anyway"
            )
    if not command.allow_schema_change and _signature(serving) != _signature(candidate):
        return (
            f"the bundle's inputs ({_signature_text(candidate)}) differ from the serving model's "
            f"({_signature_text(serving)}): its clients would get 400; deploy with --allow-schema-change if they are "
            "ready for it"
        )
    return None


def _signature(model: Model) -> list[tuple[str, str, tuple[object, ...] | None]]:
    return [(spec.name, spec.dtype, spec.shape) for spec in model.inputs]


def _signature_text(model: Model) -> str:
    return ", ".join(f"{spec.name} {spec.shape_text()} {spec.dtype}" for spec in model.inputs)[:300]
