"""Ed25519 keys and signatures on the host: ``edgekit keygen`` and ``edgekit sign``.

The private key is a PEM file (PKCS#8, unencrypted, mode 0600) that stays on the host or in a CI secret;
the public key (``.pub``, PEM) goes to the devices. Verification is the runtime's
(:mod:`edgekit_runtime.signing`): the host checks bundles with the very code the device runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import ConfigError
from edgekit_runtime.signing import Signature, key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def generate_keypair(prefix: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` and ``PREFIX.pub``; returns both paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    prefix = Path(prefix)
    private, public = prefix.with_name(prefix.name + PRIVATE_SUFFIX), prefix.with_name(prefix.name + PUBLIC_SUFFIX)
    for path in (private, public):
        if path.exists() and not overwrite:
            raise ConfigError(f"'{path}' exists: choose another name with -o, or pass --force to replace it")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key, or raise a :class:`ConfigError` that says what the file is instead."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"signing key '{path}' does not exist: make one with edgekit keygen")
    data = path.read_bytes()
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise ConfigError(f"'{path}' is a public key: sign with the .key file, and give devices the .pub")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(f"'{path}' is encrypted: edgekit signs with unencrypted keys (mode 0600)") from exc
    except ValueError as exc:
        raise ConfigError(f"'{path}' is not a PEM private key: make one with edgekit keygen") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"'{path}' is not an Ed25519 key: make one with edgekit keygen")
    return key


def sign_manifest(manifest: bytes, key: Ed25519PrivateKey) -> Signature:
    """A detached signature over the manifest's exact bytes."""
    return Signature(key_id(key.public_key()), key.sign(manifest))
