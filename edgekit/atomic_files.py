"""Files edgekit hands out (bundles, compressed models, reports): written atomically, under one permission rule.

A bundle is published to devices, not a secret, so every such file is created the way other build tools
create their outputs: mode ``0666`` less the process umask (``0644`` under the usual ``022``). Private keys
are the exception and never come through here (:func:`edgekit.bundle.signing.generate_keypair` writes them
``0600``). A file appears under its name only when it is complete: it is written beside its target under a
hidden name, then renamed into place.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Callable

#: the mode a published file is created with, before the umask takes its bits away
PUBLISHED_MODE = 0o666


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no half-written file is ever seen there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _publish(path, lambda fh: fh.write(data))


def copy_atomic(source: Path, path: Path) -> None:
    """Copy the file ``source`` to ``path`` the same way: complete or not there, with the published mode."""
    with Path(source).open("rb") as src:
        _publish(Path(path), lambda fh: shutil.copyfileobj(src, fh))


def _publish(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create a hidden file beside ``path``, ``write`` into it, then rename it into place (or remove it)."""
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[Path, int]:
    """A new hidden file in ``path``'s folder, created with :data:`PUBLISHED_MODE` (the umask applies)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return tmp, os.open(tmp, flags, PUBLISHED_MODE)
