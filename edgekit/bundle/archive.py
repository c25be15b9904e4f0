"""Deterministic ZIP archives: the same members always give the same bytes.

Members are written in a fixed order (the manifest first, the signature last, the rest by name) with a
fixed timestamp, fixed permissions and deflate at a fixed level; nothing about the machine or the moment
leaks in.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from edgekit_runtime.bundle_format import MANIFEST, SIGNATURE

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)
_LEVEL = 6


def member_order(name: str) -> tuple[int, str]:
    """Manifest first, signature last, the rest by name."""
    return (0 if name == MANIFEST else 2 if name == SIGNATURE else 1, name)


def archive_bytes(members: Mapping[str, bytes]) -> bytes:
    """The archive holding ``members``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in sorted(members, key=member_order):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the host
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name], compresslevel=_LEVEL)
    return buf.getvalue()


def read_members(path: Path) -> dict[str, bytes]:
    """Every member of an archive this package wrote (re-signing reads one back)."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}
