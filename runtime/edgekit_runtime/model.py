"""``edgekit_runtime.load(path)``: a verified, self-tested model ready to predict, with no HTTP involved.

A bundle is opened through :func:`edgekit_runtime.bundle.open_bundle` (every hash, and the signature when
keys are trusted), its model checked to reach nothing outside the bundle (:mod:`edgekit_runtime.confinement`,
before any session exists), loaded in the engine its manifest names, warmed up, and run on its golden inputs:
a model that does not give the outputs it was bundled with is refused (:class:`SelfTestError`). A plain
``.onnx`` file is accepted too, checked the same way but unverified and untested, unless a signature is required.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from edgekit_runtime.backends import BackendSettings, open_backend
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import GOLDEN, REFERENCE, SUFFIX
from edgekit_runtime.errors import BundleError, ConfigError, SelfTestError, SignatureError
from edgekit_runtime.golden import Golden, SelfTest, self_test
from edgekit_runtime.specs import InputCheck, TensorSpec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edgekit_runtime.backends import Backend
    from edgekit_runtime.signing import TrustedKey


@dataclass(frozen=True)
class LoadOptions:
    """How to load and check a model."""

    trusted_keys: Sequence[TrustedKey] = ()
    #: ``None``: required exactly when keys are trusted
    require_signature: bool | None = None
    backend: BackendSettings = field(default_factory=BackendSettings)
    #: run the golden self-test and refuse a model that fails it
    self_test: bool = True
    #: inference calls before the model counts as ready (first calls allocate and pick kernels)
    warmup: int = 3
    #: largest number of elements one input may have in a request (``None``: no limit)
    max_elements: int | None = 1 << 24


@dataclass
class Model:
    """A loaded model: what it is, and ``predict``."""

    name: str
    version: str
    sha256: str
    backend: Backend
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = None
    manifest: dict[str, Any] | None = None
    path: Path | None = None
    self_test: SelfTest | None = None
    load_seconds: float = 0.0
    max_elements: int | None = None
    signer: str | None = None
    #: the bundle's ``reference.json`` (what telemetry compares inputs with), when it has one
    reference: dict[str, Any] | None = None
    check: InputCheck = field(init=False)

    def __post_init__(self) -> None:
        """Compile the input check."""
        self.check = InputCheck(self.inputs, max_elements=self.max_elements)

    @property
    def batched(self) -> bool:
        """Every input has a free first axis, so samples can be stacked into one call."""
        return all(s.batched for s in self.inputs)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the model (names, dtypes, shapes) and run it; outputs by name."""
        return self.backend.run(self.check(inputs))

    def predict_one(self, sample: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:  # noqa: ANN401
        """One sample without its batch axis (a mapping, or the array of a one-input model)."""
        if not isinstance(sample, dict):
            if len(self.inputs) != 1:
                raise ConfigError(f"the model has {len(self.inputs)} inputs: pass a dict of them by name")
            sample = {self.inputs[0].name: sample}
        batched = {k: np.asarray(v)[None] for k, v in sample.items()}
        return {k: v[0] if v.ndim else v for k, v in self.predict(batched).items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run inputs that were already checked (servers validate before they queue)."""
        return self.backend.run(feeds)

    def metadata(self) -> dict[str, Any]:
        """Name, version, hash, engine, inputs and outputs: what servers report."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "backend": self.backend.name,
            "devices": list(self.backend.devices),
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "labels": self.labels,
            "signed_by": self.signer,
        }


def load(path: Path | str, options: LoadOptions | None = None) -> Model:
    """Open, verify, load, warm up and self-test ``path`` (an ``.edgebundle``, or a plain ``.onnx``)."""
    options = options or LoadOptions()
    start = time.perf_counter()
    path = Path(path)
    model = _plain_onnx(path, options) if path.suffix == ".onnx" else _bundle(path, options)
    _warm_up(model, options.warmup)
    model.load_seconds = time.perf_counter() - start
    return model


def _plain_onnx(path: Path, options: LoadOptions) -> Model:
    required = bool(options.trusted_keys) if options.require_signature is None else options.require_signature
    if required:
        raise SignatureError(f"'{path.name}' is a plain ONNX file and this device requires signed bundles: bundle it")
    if not path.is_file():
        raise BundleError(f"model file '{path}' does not exist: check the path")
    data = path.read_bytes()
    backend = open_backend("onnxruntime", data, options.backend, source=path.name)  # checked confined first
    return Model(
        name=path.stem,
        version="unversioned",
        sha256=hashlib.sha256(data).hexdigest(),
        backend=backend,
        inputs=backend.inputs,
        outputs=backend.outputs,
        path=path,
        max_elements=options.max_elements,
    )


def _bundle(path: Path, options: LoadOptions) -> Model:
    if path.suffix != SUFFIX and path.is_file():
        raise BundleError(f"'{path.name}' is neither an {SUFFIX} bundle nor an .onnx model: pass one of those")
    bundle = open_bundle(path, trusted_keys=options.trusted_keys, require_signature=options.require_signature)
    entry = bundle.model
    # open_backend refuses a model that reaches outside the bundle before making a session (edgekit_runtime.confinement)
    backend = open_backend(entry["backend"], bundle.read(entry["path"]), options.backend, source=bundle.model_source)
    model = Model(
        name=bundle.name,
        version=bundle.version,
        sha256=entry["sha256"],
        backend=backend,
        inputs=_with_layouts(backend.inputs, bundle.manifest.get("inputs")),
        outputs=_with_layouts(backend.outputs, bundle.manifest.get("outputs")),
        labels=bundle.manifest.get("labels"),
        manifest=bundle.manifest,
        path=path,
        max_elements=options.max_elements,
        signer=None if bundle.signer is None else bundle.signer.key_id,
        reference=_reference(bundle.read(REFERENCE), path) if REFERENCE in bundle.members else None,
    )
    if options.self_test:
        result = self_test(Golden.from_bytes(bundle.read(GOLDEN)), model.run)
        if not result.passed:
            raise SelfTestError(
                f"bundle '{path.name}' fails its self-test on this device ({result.failure()}): "
                "the engine or its version computes different outputs; check edgekit-runtime doctor, or rebuild "
                "the bundle for this target"
            )
        model.self_test = result
    return model


def _with_layouts(specs: list[TensorSpec], entries: Any) -> list[TensorSpec]:  # noqa: ANN401  (manifest JSON)
    """The engine's specs, with the layout the manifest gives each one (a converted ``.tflite`` model's)."""
    layouts = {}
    if isinstance(entries, list):
        layouts = {e.get("name"): e.get("layout") for e in entries if isinstance(e, dict)}
    return [
        dataclasses.replace(s, layout=str(layout)) if (layout := layouts.get(s.name)) is not None else s for s in specs
    ]


def _reference(data: bytes, path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BundleError(
            f"bundle '{path.name}' has a {REFERENCE} that is not JSON ({exc}): rebuild the bundle"
        ) from None
    if not isinstance(doc, dict):
        raise BundleError(f"bundle '{path.name}' has a {REFERENCE} that is not an object: rebuild the bundle")
    return doc


def _warm_up(model: Model, calls: int) -> None:
    if calls <= 0:
        return
    feeds = {s.name: _zeros(s) for s in model.inputs}
    for _ in range(calls):
        model.run(feeds)


def _zeros(spec: TensorSpec) -> np.ndarray:
    shape = tuple(d if isinstance(d, int) else 1 for d in (spec.shape or ()))
    if spec.dtype == "string":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=spec.dtype)
