"""Write a bundle: model, manifest, golden data, reference statistics, report, signature.

:func:`build` makes the members in memory from a :class:`PackInput` (the model, how to run it, what it
came from), :func:`write` puts them in ``NAME-VERSION.edgebundle`` atomically, and :func:`check_written`
opens the result with the runtime's own verifier and runs its self-test, so a bundle the host writes is
one a device accepts. ``edgekit compress`` calls these with the model it chose; :mod:`.source` packs a
model file or a compress output folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit import atomic_files
from edgekit.bundle import archive, golden, reference, signing
from edgekit.bundle.manifest import ManifestFields, check_name, check_version, manifest_bytes
from edgekit.errors import BundleCheckError, ConfigError, EdgekitError
from edgekit_runtime import bundle_format as fmt
from edgekit_runtime.bundle import Bundle, open_bundle
from edgekit_runtime.golden import Golden, self_test

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np

    from edgekit.data import Dataset
    from edgekit.graph_stats import TensorSpec

DEFAULT_VERSION = "1.0.0"


@dataclass(frozen=True)
class BundleOptions:
    """What a bundle is called and says, and who signs it."""

    #: ``None``: made from the model's file name
    name: str | None = None
    version: str = DEFAULT_VERSION
    #: class labels in output order (``None``: what the model's source said, if anything)
    labels: tuple[str, ...] | None = None
    #: how raw inputs become model inputs (``edgekit compress --preprocess``), for the device to repeat
    preprocessing: Mapping[str, Any] | None = None
    #: the device profile the model was made for
    target: str | None = None
    #: ``None``: ``$SOURCE_DATE_EPOCH`` when set, else the time of the model (see :func:`created_time`)
    created: datetime | None = None
    #: Ed25519 private key (PEM) to sign with; ``None``: unsigned
    signing_key: Path | None = None

    def check(self) -> None:
        """Refuse bad values before any work."""
        if self.name is not None:
            check_name(self.name)
        check_version(self.version)
        if self.signing_key is not None:
            signing.load_private_key(self.signing_key)


Runner = golden.Runner


@dataclass(frozen=True)
class PackInput:
    """The model to bundle and what is known about it."""

    backend: str  # "onnxruntime" or "litert"
    data: bytes
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    run: Runner
    #: where the model came from: kind and file name (never a full path: bundles travel)
    source: Mapping[str, Any]
    #: the uncompressed model, for golden tolerances
    original_run: Runner | None = None
    labels: Sequence[str] | None = None
    feature_names: Sequence[str] | None = None
    report: Mapping[str, Any] | None = None
    compression: Mapping[str, Any] | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    #: extra manifest fields per input or output name (a converted ``.tflite`` model's ``layout`` and ``perm``)
    tensor_notes: Mapping[str, Mapping[str, Any]] | None = None
    #: extra fields of the manifest's model entry (``converted_from``, ``variant``)
    model_notes: Mapping[str, Any] | None = None

    @property
    def model_file(self) -> str:
        """The model's member name."""
        return fmt.MODEL_FILES[self.backend]


def created_time(options: BundleOptions, fallback: datetime) -> datetime:
    """``options.created``, else ``$SOURCE_DATE_EPOCH`` (reproducible builds), else ``fallback``; whole seconds."""
    when = options.created
    if when is None and os.environ.get("SOURCE_DATE_EPOCH"):
        try:
            when = datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), tz=timezone.utc)
        except ValueError as exc:
            raise ConfigError("SOURCE_DATE_EPOCH is not a whole number of seconds: fix or unset it") from exc
    when = when or fallback
    return when.astimezone(timezone.utc).replace(microsecond=0)


def build(
    model: PackInput,
    *,
    name: str,
    options: BundleOptions,
    golden_inputs: dict[str, np.ndarray],
    reference_data: Dataset | None,
    created: datetime,
) -> dict[str, bytes]:
    """Every member of the bundle, the manifest (and the signature) included."""
    float16 = golden.computes_in_float16(model.model_file, model.data)
    gold = golden.make_golden(golden_inputs, model.run, original=model.original_run, float16=float16)
    members = {
        model.model_file: model.data,
        fmt.GOLDEN: gold.to_bytes(),
        fmt.REFERENCE: reference.reference_bytes(
            reference.reference(
                reference_data, feature_names=tuple(model.feature_names) if model.feature_names else None
            )
        ),
    }
    if model.report is not None:
        members[fmt.REPORT] = (json.dumps(model.report, indent=2, sort_keys=True) + "\n").encode()
    labels = options.labels if options.labels is not None else model.labels
    _check_labels(labels, model.outputs)
    fields = ManifestFields(
        name=name,
        version=options.version,
        created=created,
        backend=model.backend,
        model_file=model.model_file,
        inputs=model.inputs,
        outputs=model.outputs,
        source=model.source,
        labels=labels,
        feature_names=model.feature_names,
        preprocessing=options.preprocessing,
        compression=model.compression,
        target={"name": options.target or "generic"},
        tensor_notes=model.tensor_notes,
        model_notes=model.model_notes,
    )
    members[fmt.MANIFEST] = manifest_bytes(fields, members)
    if options.signing_key is not None:
        key = signing.load_private_key(options.signing_key)
        members[fmt.SIGNATURE] = signing.sign_manifest(members[fmt.MANIFEST], key).to_bytes()
    return members


def _check_labels(labels: Sequence[str] | None, outputs: Sequence[TensorSpec]) -> None:
    if labels is None:
        return
    widths = {s.shape[-1] for s in outputs if s.shape and isinstance(s.shape[-1], int) and len(s.shape) == 2}  # noqa: PLR2004
    if widths and len(labels) not in widths:
        raise ConfigError(
            f"{len(labels)} labels given but the model's outputs have {', '.join(map(str, sorted(widths)))} "
            "classes: give one label per class, in output order"
        )


def bundle_path(out_dir: Path, name: str, version: str) -> Path:
    """Where the bundle goes: ``OUT_DIR/NAME-VERSION.edgebundle``."""
    return Path(out_dir) / f"{name}-{version}{fmt.SUFFIX}"


def write(members: Mapping[str, bytes], path: Path) -> Path:
    """Write the archive atomically; every bundle edgekit writes (pack, compress, sign) is written here.

    A bundle is published to devices, not a secret: it gets the mode of every file edgekit hands out,
    ``0666`` less the umask (:mod:`edgekit.atomic_files`).
    """
    atomic_files.write_atomic(path, archive.archive_bytes(members))
    return path


def check_written(path: Path, run: Runner, *, signing_key: Path | None = None) -> Bundle:
    """Open ``path`` as a device would (signature included) and run its self-test with ``run``."""
    keys = []
    if signing_key is not None:
        from edgekit_runtime.signing import TrustedKey, key_id

        public = signing.load_private_key(signing_key).public_key()
        keys.append(TrustedKey(key_id(public), public, str(signing_key)))
    opened = open_verified(path, keys)
    from edgekit_runtime.confinement import check_confined

    try:  # what the device refuses is never written as done: e.g. ort_config session settings in an ONNX model
        check_confined(opened.read(opened.model["path"]), opened.model["backend"], source=opened.model_source)
    except EdgekitError as exc:
        raise BundleCheckError(str(exc)) from exc
    result = self_test(Golden.from_bytes(opened.read(fmt.GOLDEN)), run)
    if not result.passed:
        raise BundleCheckError(
            f"the bundle's own self-test fails on this host ({result.failure()}): report this as a bug"
        )
    return opened


def open_verified(path: Path, keys: Sequence[Any] = (), *, require_signature: bool | None = None) -> Bundle:
    """The runtime's :func:`~edgekit_runtime.bundle.open_bundle`; a refusal is the host's :class:`BundleCheckError`."""
    try:
        return open_bundle(path, trusted_keys=keys, require_signature=require_signature)
    except EdgekitError as exc:
        raise BundleCheckError(str(exc)) from exc
