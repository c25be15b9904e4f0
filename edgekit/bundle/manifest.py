"""``manifest.json``: what a bundle is, and the SHA-256 of every other member.

The manifest is written with sorted keys and two-space indents, so the same content always gives the same
bytes; the signature covers exactly those bytes. Its fields are documented in docs/bundle.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit import __version__
from edgekit.errors import ConfigError
from edgekit_runtime.bundle_format import FORMAT, FORMAT_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from edgekit.graph_stats import TensorSpec

#: names go into file names and MQTT topics: lower-case letters, digits, '.', '_' and '-'
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
#: what a ``.tflite`` variant's speed-up is measured against (the same engine and threads)
_TFLITE_FP32 = "tflite-fp32"


def check_name(name: str) -> str:
    """A bundle name, or a :class:`ConfigError` saying what is allowed."""
    return _checked(
        NAME_PATTERN,
        name,
        "name",
        "use lower-case letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)",
    )


def check_version(version: str) -> str:
    """A bundle version, or a :class:`ConfigError` saying what is allowed."""
    return _checked(VERSION_PATTERN, version, "version", "use letters, digits, '.', '+', '_' and '-', like 1.2.0")


def _checked(pattern: re.Pattern[str], value: str, what: str, allowed: str) -> str:
    if not pattern.fullmatch(value):
        raise ConfigError(f"bundle {what} '{value}' is not allowed: {allowed}")
    return value


def name_from(source: str) -> str:
    """A bundle name made from a model's file name (``Digits CNN.onnx`` → ``digits-cnn``)."""
    stem = source.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return name[:64] or "model"


def member_entry(path: str, data: bytes, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    """A ``files`` entry: path, SHA-256 and size (and anything else the member needs to say)."""
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **extra}


@dataclass(frozen=True)
class ManifestFields:
    """What the manifest says besides its members."""

    name: str
    version: str
    created: datetime
    backend: str
    model_file: str
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    source: Mapping[str, Any]
    labels: Sequence[str] | None = None
    feature_names: Sequence[str] | None = None
    preprocessing: Mapping[str, Any] | None = None
    compression: Mapping[str, Any] | None = None
    target: Mapping[str, Any] | None = None
    #: extra fields per input or output name (``layout``, ``perm`` of a converted ``.tflite`` model)
    tensor_notes: Mapping[str, Mapping[str, Any]] | None = None
    #: extra fields of the model entry (``converted_from``, ``variant``)
    model_notes: Mapping[str, Any] | None = None


def manifest_bytes(fields: ManifestFields, members: Mapping[str, bytes]) -> bytes:
    """The manifest for ``members`` (every member but the manifest and the signature)."""
    files = [member_entry(path, members[path]) for path in sorted(members)]
    model = next(f for f in files if f["path"] == fields.model_file)
    notes = fields.tensor_notes or {}
    inputs = [spec.to_json() | dict(notes.get(spec.name, {})) for spec in fields.inputs]
    outputs = [spec.to_json() | dict(notes.get(spec.name, {})) for spec in fields.outputs]
    if fields.feature_names is not None and len(inputs) == 1:
        inputs[0]["features"] = list(fields.feature_names)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": fields.name,
        "version": fields.version,
        "created": fields.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "producer": f"edgekit {__version__}",
        "source": dict(fields.source),
        "models": [{**model, "backend": fields.backend, **(fields.model_notes or {})}],
        "files": files,
        "inputs": inputs,
        "outputs": outputs,
        "labels": None if fields.labels is None else list(fields.labels),
        "preprocessing": None if fields.preprocessing is None else dict(fields.preprocessing),
        "compression": None if fields.compression is None else dict(fields.compression),
        "target": dict(fields.target) if fields.target is not None else {"name": "generic"},
    }
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def compression_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers from ``report.json`` a fleet operator reads: what was chosen, gained and lost."""
    chosen = next((v for v in report.get("variants", []) if v.get("name") == report.get("chosen")), None)
    original = report.get("original", {})
    summary: dict[str, Any] = {"chosen": report.get("chosen"), "edgekit_version": report.get("edgekit_version")}
    if chosen is not None:
        before, after = original.get("size", {}).get("raw_bytes"), chosen["size"]["raw_bytes"]
        summary |= {"original_bytes": before, "bytes": after}
        summary["size_ratio"] = round(after / before, 4) if before else None
        speed = {}
        timed_against = original  # same engine and threads: a .tflite variant is timed against the FP32 .tflite
        if chosen.get("engine", "onnxruntime") != "onnxruntime":
            timed_against = next((v for v in report["variants"] if v.get("name") == _TFLITE_FP32), {})
            summary["speedup_against"] = _TFLITE_FP32
        for lat in chosen.get("latency", []):
            base = next((o for o in timed_against.get("latency", []) if o["batch"] == lat["batch"]), None)
            if base and lat["p50_ms"]:
                speed[str(lat["batch"])] = round(base["p50_ms"] / lat["p50_ms"], 3)
        summary["speedup_by_batch"] = speed
        summary["accuracy"] = {"original": original.get("accuracy"), "chosen": chosen.get("accuracy")}
        summary["fidelity"] = chosen.get("fidelity", [])[:1]
    auto = report.get("auto")
    if auto:
        summary["budget"] = {"budget": auto.get("budget"), "metric": auto.get("metric"), **(auto.get("verdict") or {})}
    return summary
