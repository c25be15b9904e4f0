"""The device's model store: bundles kept by their sha256, and a record of which one is served.

``models/`` in the state directory holds ``<sha256>.edgebundle`` files and ``state.json``:
``{"current": SHA, "previous": SHA, "deploy": {...}}``. Every write is crash-safe: a temporary file,
``fsync``, ``rename`` over the old one, then ``fsync`` of the folder, so after a power cut the record is
either the old one or the new one, never half of each. A bundle is only renamed into place after its
hash was checked, so a file named by a hash always has that hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit_runtime.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

SUFFIX = ".edgebundle"
STATE = "state.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
#: the prefix of a folder of chunks of a bundle being fetched over MQTT (:mod:`edgekit_runtime.fleet.chunks`)
PARTIAL = ".partial-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, chunks: Iterable[bytes]) -> str:
    """Write ``chunks`` to ``path`` crash-safely; returns their sha256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return digest.hexdigest()


def remove_partials(root: Path, keep: str | None = None) -> list[str]:
    """Delete the chunk folders in ``root`` but ``keep``'s (a bundle's sha256); the hashes deleted."""
    gone = []
    for folder in root.glob(f"{PARTIAL}*"):
        sha = folder.name[len(PARTIAL) :]
        if sha != keep:
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(sha)
    return gone


class ModelStore:
    """Bundles by hash, and which one is current."""

    def __init__(self, root: Path) -> None:
        """Open (or create) the store in ``root``."""
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--state-dir {self.root.parent} cannot be used ({exc.strerror or exc}): give a writable folder"
            ) from None

    def path(self, sha256: str) -> Path:
        """Where the bundle with this hash is (or would be) kept."""
        if not SHA256.match(sha256):
            raise BundleError(f"'{sha256}' is not a sha256 (64 lowercase hex digits)")
        return self.root / f"{sha256}{SUFFIX}"

    def has(self, sha256: str) -> bool:
        """Whether the bundle is kept here."""
        return self.path(sha256).is_file()

    def put(self, chunks: Iterable[bytes], sha256: str | None = None) -> tuple[str, Path]:
        """Keep a bundle; with ``sha256``, refuse one whose bytes do not have it. Returns (hash, path)."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming.")
        os.close(fd)
        staging = Path(tmp)
        try:
            actual = write_atomically(staging, chunks)
            if sha256 is not None and actual != sha256:
                raise BundleError(
                    f"the bundle's sha256 is {actual}, not the {sha256} the command named: it was damaged or "
                    "replaced on the way; deploy it again"
                )
            final = self.path(actual)
            staging.replace(final)
            _fsync_dir(self.root)
        finally:
            staging.unlink(missing_ok=True)
        return actual, final

    def put_file(self, source: Path, sha256: str | None = None) -> tuple[str, Path]:
        """:meth:`put` from a local file."""
        with Path(source).open("rb") as fh:
            return self.put(iter(lambda: fh.read(CHUNK), b""), sha256)

    def state(self) -> dict[str, Any]:
        """The record: ``current``, ``previous`` and the last ``deploy`` (empty for a new store)."""
        path = self.root / STATE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path} cannot be read ({exc}): move it aside to start from the command's MODEL"
            ) from None
        return doc if isinstance(doc, dict) else {}

    def save(self, state: dict[str, Any]) -> None:
        """Write the record crash-safely."""
        write_atomically(self.root / STATE, [json.dumps(state, sort_keys=True, indent=1).encode()])

    def prune(self, keep: Iterable[str | None]) -> list[str]:
        """Delete kept bundles other than ``keep`` (current, previous); returns the hashes deleted.

        Chunks of unfinished fetches over MQTT go too: a deploy ended since.
        """
        wanted = {sha for sha in keep if sha}
        remove_partials(self.root)
        gone = []
        for bundle in self.root.glob(f"*{SUFFIX}"):
            if bundle.stem not in wanted:
                bundle.unlink(missing_ok=True)
                gone.append(bundle.stem)
        return gone

    def clean(self, keep_partial: str | None = None) -> None:
        """At start: delete what an interrupted write or fetch left behind.

        Staging files (``.incoming.*``, a record's temporary copy) always go; chunk folders go but
        ``keep_partial``'s, the bundle the last deploy was fetching over MQTT, so sending that deploy again resumes.
        """
        for leftover in self.root.glob(".*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
        remove_partials(self.root, keep=keep_partial)
