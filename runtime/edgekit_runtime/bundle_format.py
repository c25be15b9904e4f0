"""The bundle format: its members' names, its version, and the manifest's schema.

A bundle (``NAME-VERSION.edgebundle``) is a ZIP archive of flat members (docs/bundle.md)::

    manifest.json     what the bundle is; pins every other member by SHA-256 and size
    model.onnx | model.tflite
    golden.npz        inputs and expected outputs for the self-test
    reference.json    per-feature reference statistics for drift detection
    report.json       the compress report (when the model was compressed)
    manifest.sig      optional detached Ed25519 signature over manifest.json

The runtime owns this format; the host's writer (``edgekit.bundle``) imports it from here.

A manifest is JSON a signature vouches for, not one that is well formed: every field the runtime reads is
checked for its type (:func:`check_manifest`) before anything reads it, so a signed but malformed manifest is a
one-line :class:`BundleError` naming the field, never a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from edgekit_runtime.errors import BundleError

FORMAT = "edgekit-bundle"
FORMAT_VERSION = 1
SUFFIX = ".edgebundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
GOLDEN = "golden.npz"
REFERENCE = "reference.json"
REPORT = "report.json"
#: model file name by backend
MODEL_FILES = {"onnxruntime": "model.onnx", "litert": "model.tflite"}
_REBUILD = "rebuild the bundle with edgekit bundle pack"
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: longest name or version a manifest may give (they go into logs, metrics and fleet events)
_MAX_TEXT = 128


@dataclass(frozen=True)
class Member:
    """A file the manifest pins."""

    path: str
    sha256: str
    size: int


def parse_manifest(data: bytes) -> dict[str, Any]:
    """``manifest.json``'s bytes as a checked manifest: this format and version, every field typed."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{MANIFEST} is not valid JSON ({_first_line(exc)}): rebuild the bundle") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST} is not an edgekit manifest: rebuild the bundle with edgekit")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {_shown(version)} is not {FORMAT_VERSION}, the one this runtime reads: "
            "update edgekit-runtime, or rebuild the bundle with a matching edgekit"
        )
    for key in ("name", "version", "models", "files"):
        if key not in manifest:
            raise BundleError(f"{MANIFEST} has no '{key}': rebuild the bundle")
    check_manifest(manifest)
    return manifest


def check_manifest(manifest: dict[str, Any]) -> None:
    """Check the type of every field the runtime and ``edgekit verify`` read.

    A :class:`BundleError` names the first wrong one: ``name``, ``version``, ``models`` (a non-empty list of
    ``{path, backend, sha256, size}``), ``files`` (a list of ``{path, sha256, size}``), ``inputs`` and
    ``outputs`` (lists of ``{name, dtype, shape}``, with ``layout``, ``perm`` and ``features`` where given),
    ``labels`` and ``preprocessing``.
    """
    for key in ("name", "version"):
        value = manifest[key]
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT or not value.isprintable():
            raise _wrong(key, f"is {_shown(value)}, not a name of 1 to {_MAX_TEXT} printable characters")
    files = _list(manifest, "files")
    for i, entry in enumerate(files):
        _pinned(_object(entry, f"files[{i}]"), f"files[{i}]")
    models = _list(manifest, "models")
    if not models:
        raise _wrong("models", "is empty, so the bundle has no model")
    for i, entry in enumerate(models):
        where = f"models[{i}]"
        backend = _pinned(_object(entry, where), where).get("backend")
        if not isinstance(backend, str) or backend not in MODEL_FILES:
            raise _wrong(
                f"{where}.backend",
                f"is {_shown(backend)}, not one of {', '.join(MODEL_FILES)} (a newer edgekit's bundle needs a newer "
                "edgekit-runtime)",
            )
    for kind in ("inputs", "outputs"):
        for i, entry in enumerate(_list(manifest, kind, optional=True)):
            _tensor(_object(entry, f"{kind}[{i}]"), f"{kind}[{i}]", features=kind == "inputs")
    _strings(manifest.get("labels"), "labels", optional=True)
    preprocessing = manifest.get("preprocessing")
    if preprocessing is not None and not isinstance(preprocessing, dict):
        raise _wrong("preprocessing", f"is {_shown(preprocessing)}, not an object or null")


def _wrong(field: str, problem: str) -> BundleError:
    return BundleError(f"{MANIFEST} field '{field}' {problem}: {_REBUILD}")


def _shown(value: object) -> str:
    """A JSON value in a one-line message: its type, and the value itself when it is short."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 40 else value[:39] + "…")  # noqa: PLR2004
        return f"the string {text}"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(where, f"is {_shown(value)}, not an object")
    return value


def _list(manifest: dict[str, Any], key: str, *, optional: bool = False) -> list[Any]:
    value = manifest.get(key)
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise _wrong(key, f"is {_shown(value)}, not a list")
    return value


def _strings(value: object, where: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(where, f"is {_shown(value)}, not a list of strings")


def _pinned(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``files`` or ``models`` entry: ``path``, ``sha256`` (64 lower-case hex digits), ``size`` (bytes)."""
    path, sha256, size = entry.get("path"), entry.get("sha256"), entry.get("size")
    if not isinstance(path, str) or not path or not path.isprintable():
        raise _wrong(f"{where}.path", f"is {_shown(path)}, not a member name")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise _wrong(f"{where}.sha256", f"is {_shown(sha256)}, not a SHA-256 in hex")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _wrong(f"{where}.size", f"is {_shown(size)}, not a size in bytes")
    return entry


def _tensor(entry: dict[str, Any], where: str, *, features: bool) -> None:
    """An ``inputs`` or ``outputs`` entry: ``name``, ``dtype``, ``shape`` (integers, strings, nulls, or null)."""
    for key in ("name", "dtype"):
        if not isinstance(entry.get(key), str):
            raise _wrong(f"{where}.{key}", f"is {_shown(entry.get(key))}, not a string")
    shape = entry.get("shape", ())
    if shape is not None and (
        not isinstance(shape, list)
        or not all(d is None or isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool)) for d in shape)
    ):
        raise _wrong(f"{where}.shape", f"is {_shown(shape)}, not a list of integers, names and nulls")
    layout = entry.get("layout")
    if layout is not None and not isinstance(layout, str):
        raise _wrong(f"{where}.layout", f"is {_shown(layout)}, not a string")
    perm = entry.get("perm")
    if perm is not None and (
        not isinstance(perm, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in perm)
    ):
        raise _wrong(f"{where}.perm", f"is {_shown(perm)}, not a list of axes")
    if features:
        _strings(entry.get("features"), f"{where}.features", optional=True)


def pinned_members(manifest: dict[str, Any]) -> dict[str, Member]:
    """The pinned members of a manifest :func:`check_manifest` has checked, by path."""
    members: dict[str, Member] = {}
    for entry in manifest["files"]:
        member = Member(entry["path"], entry["sha256"], entry["size"])
        if member.path in {MANIFEST, SIGNATURE} or member.path in members:
            raise BundleError(f"{MANIFEST} lists '{member.path}' where it cannot: rebuild the bundle")
        members[member.path] = member
    for i, model in enumerate(manifest["models"]):
        pinned = members.get(model["path"])
        if pinned is None:
            raise BundleError(f"{MANIFEST} names model '{model['path']}' but does not pin its hash: rebuild the bundle")
        if (model["sha256"], model["size"]) != (pinned.sha256, pinned.size):
            raise _wrong(f"models[{i}]", f"gives another SHA-256 or size for '{pinned.path}' than 'files' does")
    return members
