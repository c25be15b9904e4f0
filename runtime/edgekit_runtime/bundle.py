"""Open an edgekit bundle and trust nothing in it until it is checked.

A bundle is a ZIP archive of flat members whose names and manifest :mod:`edgekit_runtime.bundle_format` defines
(docs/bundle.md). :func:`open_bundle` refuses, each with its own message: a file that is not a ZIP archive; a
member name that is absolute, climbs out (``..``), uses backslashes, is a folder or link, or repeats; a member
over the size limits or compressed suspiciously well; a missing or malformed manifest; a member the manifest
does not list, or one it lists that is missing; a member whose size or SHA-256 differs; a signature that does
not verify against the trusted keys; and an unsigned bundle where a signature is required.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from edgekit_runtime.bundle_format import MANIFEST, SIGNATURE, Member, parse_manifest, pinned_members
from edgekit_runtime.errors import BundleError, SignatureError
from edgekit_runtime.signing import parse_signature, verify

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from edgekit_runtime.signing import TrustedKey

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What a bundle may hold; anything past these is refused before it is read."""

    max_members: int = 64
    max_member_bytes: int = 2 << 30
    max_total_bytes: int = 4 << 30
    max_manifest_bytes: int = 1 << 20
    #: uncompressed / compressed: far past what real models reach, well short of a ZIP bomb
    max_ratio: int = 200


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest, and members read back through the same checks."""

    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    members: dict[str, Member]
    #: the trusted key that signed it; ``None`` when unsigned or when no keys were given
    signer: TrustedKey | None = None
    #: the key id in ``manifest.sig``, verified or not
    signature_key_id: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def name(self) -> str:
        """The model's name."""
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        """The model's version."""
        return str(self.manifest["version"])

    @property
    def model(self) -> dict[str, Any]:
        """The model entry: path, backend, sha256, size.

        :func:`~edgekit_runtime.bundle_format.check_manifest` checked it when the bundle was opened.
        """
        models: list[dict[str, Any]] = self.manifest["models"]
        return models[0]

    @property
    def model_source(self) -> str:
        """How errors name the model: ``NAME-VERSION.edgebundle/model.onnx``."""
        return f"{self.path.name}/{self.model['path']}"

    def read(self, name: str) -> bytes:
        """A member's bytes, checked again against the manifest."""
        if name == MANIFEST:
            return self.manifest_bytes
        member = self._member(name)
        with zipfile.ZipFile(self.path) as archive, _opened(archive, name) as fh:
            return b"".join(_checked_chunks(fh, member))

    def extract(self, name: str, dest: Path) -> Path:
        """Write a member to ``dest`` (atomically), checking its hash on the way."""
        member = self._member(name)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, zipfile.ZipFile(self.path) as archive, _opened(archive, name) as fh:
                for chunk in _checked_chunks(fh, member):
                    out.write(chunk)
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def _member(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            raise BundleError(f"bundle '{self.path.name}' has no member '{name}'") from None


def open_bundle(
    path: Path,
    *,
    trusted_keys: Sequence[TrustedKey] = (),
    require_signature: bool | None = None,
    limits: Limits | None = None,
) -> Bundle:
    """Open ``path`` and check every member against the manifest and the manifest against the keys.

    ``require_signature`` defaults to whether ``trusted_keys`` were given: a device that trusts keys runs
    only what they signed.
    """
    path = Path(path)
    limits = limits or Limits()
    required = bool(trusted_keys) if require_signature is None else require_signature
    if not path.is_file():
        raise BundleError(f"bundle '{path}' does not exist: check the path")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"'{path.name}' is not an edgekit bundle (not a ZIP archive): rebuild it") from exc
    with archive:
        infos = _check_names(archive, path.name, limits)
        manifest_bytes = _read_small(archive, infos, MANIFEST, limits.max_manifest_bytes)
        manifest = parse_manifest(manifest_bytes)
        members = pinned_members(manifest)
        signer, sig_id = _check_signature(archive, infos, manifest_bytes, trusted_keys, required=required)
        _check_member_set(infos, members)
        for member in members.values():
            _check_entry(infos[member.path], member, limits)
        for member in members.values():
            with _opened(archive, member.path) as fh:
                for _ in _checked_chunks(fh, member):
                    pass
    return Bundle(path, manifest, manifest_bytes, members, signer, sig_id, limits)


def _check_names(archive: zipfile.ZipFile, label: str, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    infos: dict[str, zipfile.ZipInfo] = {}
    entries = archive.infolist()
    if len(entries) > limits.max_members:
        raise BundleError(f"'{label}' has {len(entries)} members, more than {limits.max_members}: not a bundle")
    total = 0
    for info in entries:
        name = info.filename
        parts = PurePosixPath(name).parts
        if "\\" in name or name.startswith("/") or ".." in parts or (parts and ":" in parts[0]) or len(parts) != 1:
            raise BundleError(f"'{label}' has a member with an unsafe path '{name}': refusing the bundle")
        if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
            raise BundleError(f"'{label}' has a member '{name}' that is a folder or link: refusing the bundle")
        if name in infos:
            raise BundleError(f"'{label}' has member '{name}' twice: refusing the bundle")
        if info.file_size > limits.max_member_bytes:
            raise BundleError(
                f"member '{name}' is {info.file_size} bytes, over the {limits.max_member_bytes}-byte limit: "
                "refusing the bundle"
            )
        total += info.file_size
        infos[name] = info
    if total > limits.max_total_bytes:
        raise BundleError(f"'{label}' unpacks to {total} bytes, over the {limits.max_total_bytes}-byte limit")
    return infos


def _read_small(archive: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], name: str, cap: int) -> bytes:
    info = infos.get(name)
    if info is None:
        raise BundleError(f"bundle has no {name}: it is not an edgekit bundle, or it is damaged; rebuild it")
    if info.file_size > cap:
        raise BundleError(f"{name} is {info.file_size} bytes, over the {cap}-byte limit: refusing the bundle")
    with _opened(archive, name) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise BundleError(f"{name} is over the {cap}-byte limit: refusing the bundle")
    return data


def _check_signature(
    archive: zipfile.ZipFile,
    infos: dict[str, zipfile.ZipInfo],
    manifest: bytes,
    keys: Sequence[TrustedKey],
    *,
    required: bool,
) -> tuple[TrustedKey | None, str | None]:
    if SIGNATURE not in infos:
        if required:
            raise SignatureError(
                "bundle is unsigned and this device requires a signature: sign it with edgekit sign --key"
            )
        return None, None
    signature = parse_signature(_read_small(archive, infos, SIGNATURE, 4096))
    if not keys:
        return None, signature.key_id
    return verify(manifest, signature, keys), signature.key_id


def _check_member_set(infos: dict[str, zipfile.ZipInfo], members: dict[str, Member]) -> None:
    for name in members:
        if name not in infos:
            raise BundleError(f"member '{name}' is listed in the manifest but missing from the bundle: rebuild it")
    for name in infos:
        if name not in members and name not in {MANIFEST, SIGNATURE}:
            raise BundleError(f"member '{name}' is not listed in the manifest: refusing the bundle")


def _check_entry(info: zipfile.ZipInfo, member: Member, limits: Limits) -> None:
    if info.file_size != member.size:
        raise BundleError(
            f"member '{member.path}' is {info.file_size} bytes but the manifest says {member.size}: "
            "the bundle was changed after it was built"
        )
    if info.compress_size and info.file_size > (1 << 20) and info.file_size / info.compress_size > limits.max_ratio:
        raise BundleError(f"member '{member.path}' is compressed over {limits.max_ratio}:1: refusing a ZIP bomb")


class _opened:  # noqa: N801  (a context manager used like open())
    """Open a member, turning ZIP-level damage into a :class:`BundleError` naming it."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.archive, self.name = archive, name
        self.fh: IO[bytes] | None = None

    def __enter__(self) -> _Guarded:
        try:
            self.fh = self.archive.open(self.name)
        except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError) as exc:
            raise _damaged(self.name, exc) from exc
        return _Guarded(self.fh, self.name)

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()


@dataclass
class _Guarded:
    fh: IO[bytes]
    name: str

    def read(self, n: int = -1) -> bytes:
        try:
            return self.fh.read(n)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise _damaged(self.name, exc) from exc


def _damaged(name: str, exc: BaseException) -> BundleError:
    return BundleError(f"member '{name}' is damaged ({exc}): the bundle was corrupted in transit; copy it again")


def _checked_chunks(fh: _Guarded, member: Member) -> Iterator[bytes]:
    digest = hashlib.sha256()
    seen = 0
    while chunk := fh.read(_CHUNK):
        seen += len(chunk)
        if seen > member.size:
            break
        digest.update(chunk)
        yield chunk
    if seen != member.size or digest.hexdigest() != member.sha256:
        raise BundleError(
            f"member '{member.path}' does not match its SHA-256 in the manifest: the bundle was changed after it "
            "was built; rebuild it or copy it again"
        )
