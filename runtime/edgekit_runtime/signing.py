"""Ed25519 signatures over a bundle's manifest: trusted keys and verification (the device side).

A signature is detached: ``manifest.sig`` beside ``manifest.json`` in the archive, a small JSON document::

    {"algorithm": "ed25519", "key_id": "<16 hex digits>", "signature": "<base64 of 64 bytes>"}

It signs the exact bytes of ``manifest.json``, which pins every other member by its SHA-256. The key id is
the first 16 hex digits of the SHA-256 of the raw 32-byte public key; it names the key in messages and
picks the trusted key to check against. Public keys are PEM files (SubjectPublicKeyInfo), as
``edgekit keygen`` writes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit_runtime.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALGORITHM = "ed25519"
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class TrustedKey:
    """A public key the device trusts, with its id and where it came from."""

    key_id: str
    key: Ed25519PublicKey
    source: str


@dataclass(frozen=True)
class Signature:
    """A parsed ``manifest.sig``."""

    key_id: str
    signature: bytes

    def to_bytes(self) -> bytes:
        """The member's bytes (sorted keys: the same signature always gives the same bytes)."""
        doc = {"algorithm": ALGORITHM, "key_id": self.key_id, "signature": base64.b64encode(self.signature).decode()}
        return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def key_id(key: Ed25519PublicKey) -> str:
    """The short, stable name of a public key."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> TrustedKey:
    """Read a PEM Ed25519 public key, or raise a :class:`ConfigError` that says what the file is instead."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"trusted key '{path}' does not exist: pass the .pub file edgekit keygen wrote")
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"'{path}' is a private key: give the device the .pub file, and keep the .key on the host")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"'{path}' is not a PEM public key: pass the .pub file edgekit keygen wrote") from exc
    if not isinstance(key, Ed25519PublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").removeprefix("_")
        raise ConfigError(f"'{path}' is a {kind} key, not Ed25519: make one with edgekit keygen")
    return TrustedKey(key_id(key), key, str(path))


def load_trusted_keys(paths: Iterable[Path]) -> list[TrustedKey]:
    """Keys from files, or from every ``*.pub`` in a folder."""
    keys: list[TrustedKey] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.pub"))
            if not found:
                raise ConfigError(f"trusted key folder '{path}' holds no .pub file: copy the signer's .pub into it")
            keys += [load_public_key(p) for p in found]
        else:
            keys.append(load_public_key(path))
    return keys


def parse_signature(data: bytes) -> Signature:
    """Read ``manifest.sig``; a malformed one is a :class:`SignatureError`."""
    try:
        doc = json.loads(data)
        algorithm, kid, encoded = doc["algorithm"], doc["key_id"], doc["signature"]
        signature = base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError("manifest.sig is malformed: sign the bundle again with edgekit sign") from exc
    if algorithm != ALGORITHM:
        raise SignatureError(f"manifest.sig uses '{algorithm}', not {ALGORITHM}: sign the bundle with edgekit sign")
    if len(signature) != SIGNATURE_BYTES or not isinstance(kid, str):
        raise SignatureError("manifest.sig is malformed: sign the bundle again with edgekit sign")
    return Signature(kid, signature)


def verify(manifest: bytes, signature: Signature, keys: Iterable[TrustedKey]) -> TrustedKey:
    """The trusted key that made ``signature`` over ``manifest``, or a :class:`SignatureError` saying why none."""
    from cryptography.exceptions import InvalidSignature

    trusted = list(keys)
    match = next((k for k in trusted if k.key_id == signature.key_id), None)
    if match is None:
        known = ", ".join(k.key_id for k in trusted) or "none"
        raise SignatureError(
            f"bundle is signed by key {signature.key_id}, which is not trusted here (trusted: {known}): "
            "add the signer's .pub to the trusted keys, or sign with a trusted key"
        )
    try:
        match.key.verify(signature.signature, manifest)
    except InvalidSignature as exc:
        raise SignatureError(
            f"signature by key {match.key_id} does not match manifest.json: the manifest was changed after "
            "signing, or the signature is corrupt; rebuild and sign the bundle again"
        ) from exc
    return match
