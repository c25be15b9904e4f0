"""``edgekit sign``: add (or replace) the signature of an existing bundle.

The bundle is verified first (every hash): a tampered bundle is never signed. The signed bundle is the
same archive with ``manifest.sig`` added; the manifest and every other member keep their bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.bundle import archive, signing
from edgekit.bundle.pack import open_verified, write
from edgekit_runtime.bundle_format import MANIFEST, SIGNATURE

if TYPE_CHECKING:
    from pathlib import Path

    from edgekit_runtime.bundle import Bundle


def sign_bundle(path: Path, key_path: Path, out: Path | None = None) -> Bundle:
    """Sign ``path`` with the private key at ``key_path``, writing ``out`` (default: in place)."""
    key = signing.load_private_key(key_path)
    open_verified(path, require_signature=False)
    members = archive.read_members(path)
    members[SIGNATURE] = signing.sign_manifest(members[MANIFEST], key).to_bytes()
    target = out or path
    write(members, target)
    from edgekit_runtime.signing import TrustedKey, key_id

    public = key.public_key()
    return open_verified(target, [TrustedKey(key_id(public), public, str(key_path))])
