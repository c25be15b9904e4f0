"""``edgekit bundle pack|inspect``, ``edgekit keygen|sign|verify`` and ``edgekit convert``.

Exit codes: 0 done; 1 a bundle that cannot be read or trusted; 2 bad options; 3 a model that cannot be
read, or that reaches outside its bundle (``verify``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.option_values import bundle_options, shapes
from edgekit.cli.output import human_bytes, out, styled, user_errors
from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from edgekit_runtime.bundle import Bundle

bundle_app = typer.Typer(help="Build and look into edgekit bundles.", no_args_is_help=True, rich_markup_mode=None)


@bundle_app.command("pack")
def pack(
    source: str = typer.Argument(
        ...,
        help="A model (.onnx, .pkl/.joblib/.skops, MLflow folder, module.py:factory, .pt2, .tflite), "
        "or an edgekit compress output folder.",
    ),
    output: Path = typer.Option(Path(), "-o", "--output", help="Folder for NAME-VERSION.edgebundle."),
    name: str | None = typer.Option(None, help="Bundle name [default: from the model's file name]."),
    model_version: str = typer.Option("1.0.0", help="Bundle version."),
    calib: Path | None = typer.Option(None, help=".npz of representative inputs: the drift reference."),
    eval_data: Path | None = typer.Option(None, "--eval", help=".npz of inputs: the golden self-test's inputs."),
    labels: Path | None = typer.Option(None, help="Class labels: one per line, or a JSON list."),
    preprocess: str | None = typer.Option(None, help="How raw inputs become model inputs (see compress)."),
    sign_key: Path | None = typer.Option(None, help="Ed25519 private key to sign with (edgekit keygen)."),
    created: str | None = typer.Option(None, help="Creation time [default: $SOURCE_DATE_EPOCH, else the model's]."),
    input_shape: list[str] = typer.Option([], help="NAME=D1,D2,... for importers and free dimensions."),
    variant: str | None = typer.Option(
        None,
        help="From a compress output folder: the written variant to pack (tflite-int8, fp16, ...) "
        "[default: its result].",
    ),
) -> None:
    """Pack a model into a signed, verifiable bundle without compressing it."""
    with user_errors():
        from edgekit.bundle.source import PackData, pack_source

        options = bundle_options(name, model_version, labels, sign_key, created, preprocess)
        data = PackData(calib=calib, eval=eval_data, input_shapes=shapes(input_shape), variant=variant)
        built = pack_source(source, output, options, data)
    out.print(f"wrote {built.path} ({human_bytes(built.path.stat().st_size)}, {_signed(built)})", soft_wrap=True)


def _signed(bundle: Bundle) -> str:
    if bundle.signer is not None:
        return f"signed by key {bundle.signer.key_id}"
    if bundle.signature_key_id is not None:
        return f"signed by key {bundle.signature_key_id}, not verified: pass --trust"
    return "unsigned"


@bundle_app.command("inspect")
def inspect(
    bundle: Path = typer.Argument(..., help="An .edgebundle file."),
    trust: list[Path] = typer.Option([], help="Trusted public key (.pub) or folder of them, to check the signer."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Show what a bundle holds; every member's hash is checked on the way."""
    with user_errors():
        from edgekit.bundle.pack import open_verified
        from edgekit_runtime.signing import load_trusted_keys

        opened = open_verified(bundle, load_trusted_keys(trust), require_signature=False)
    if as_json:
        typer.echo(json.dumps(opened.manifest, indent=2, sort_keys=True))
        return
    _render(opened)


def _render(bundle: Bundle) -> None:
    """The bundle in tables. The runtime checked the fields it reads; the rest are shown as far as they make sense."""
    m: dict[str, Any] = bundle.manifest
    model = bundle.model
    source, target = _object(m.get("source")), _object(m.get("target"))
    out.print(
        Text.assemble(
            styled(f"{m['name']} {m['version']}", "bold"), f"  created {m.get('created')}  by {m.get('producer')}"
        )
    )
    out.print(
        f"model: {model['path']} ({model['backend']}, {human_bytes(model['size'])})  signature: {_signed(bundle)}"
    )
    io = Table(title="inputs and outputs", title_justify="left")
    specs = [
        ("in" if kind == "inputs" else "out", spec) for kind in ("inputs", "outputs") for spec in m.get(kind) or []
    ]
    layouts = any("layout" in spec for _, spec in specs)  # a .tflite model edgekit converted says NHWC
    for col in ("", "name", "dtype", "shape", *(["layout"] if layouts else [])):
        io.add_column(col)
    for kind, spec in specs:
        dims = spec.get("shape")
        shape = "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
        layout = [str(spec.get("layout", ""))] if layouts else []
        io.add_row(kind, spec["name"], spec["dtype"], shape, *layout)
    out.print(io)
    files = Table(title="members (sha256 checked)", title_justify="left")
    for col in ("path", "size", "sha256"):
        files.add_column(col)
    for f in m["files"]:
        files.add_row(f["path"], human_bytes(f["size"]), f["sha256"][:16] + "…")
    out.print(files)
    if m.get("labels"):
        labels = m["labels"]
        out.print("labels: " + ", ".join(labels[:10]) + (f" … ({len(labels)})" if len(labels) > 10 else ""))  # noqa: PLR2004
    summary = _object(m.get("compression"))
    if summary:
        out.print(f"compression: {_compression(summary)}")
    out.print(f"source: {source.get('kind')} {source.get('file')}  target: {target.get('name')}")


def _object(value: object) -> dict[str, Any]:
    """A manifest field the runtime does not read, as an object: ``{}`` when it is something else."""
    return value if isinstance(value, dict) else {}


def _compression(summary: dict[str, Any]) -> str:
    chosen, ratio = summary.get("chosen"), summary.get("size_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        return str(chosen)
    against = f" against {summary['speedup_against']}" if summary.get("speedup_against") else ""
    speed = ", ".join(f"{v}x at batch {k}{against}" for k, v in _object(summary.get("speedup_by_batch")).items())
    return f"{chosen}, size {ratio:.0%} of the original, speed {speed}"


def keygen(
    output: Path = typer.Option(
        Path("edgekit-signing"), "-o", "--output", help="Path prefix: writes PREFIX.key and PREFIX.pub."
    ),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """Make an Ed25519 key pair: the .key signs bundles (keep it secret), the .pub goes to devices."""
    with user_errors():
        from edgekit.bundle.signing import generate_keypair
        from edgekit_runtime.signing import load_public_key

        private, public = generate_keypair(output, overwrite=force)
        kid = load_public_key(public).key_id
    out.print(f"wrote {private} (private, mode 0600) and {public} (public); key id {kid}", soft_wrap=True)


def sign(
    bundle: Path = typer.Argument(..., help="An .edgebundle file."),
    key: Path = typer.Option(..., help="Ed25519 private key (.key from edgekit keygen)."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the signed bundle here [default: in place]."
    ),
) -> None:
    """Sign a bundle (its members are verified first: a tampered bundle is never signed)."""
    with user_errors():
        from edgekit.bundle.sign import sign_bundle

        signed = sign_bundle(bundle, key, output)
    out.print(f"signed {signed.path} with key {signed.signature_key_id}", soft_wrap=True)


def verify(
    bundle: Path = typer.Argument(..., help="An .edgebundle file."),
    trust: list[Path] = typer.Option([], help="Trusted public key (.pub) or folder of them; repeat for more."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help="Accept a bundle without a signature."),
    self_test: bool = typer.Option(True, "--self-test/--no-self-test", help="Also run the golden self-test here."),
) -> None:
    """Check a bundle as a device would: every hash, the signature, what the model references, the self-test."""
    with user_errors():
        from edgekit.bundle.pack import open_verified
        from edgekit_runtime.confinement import check_confined
        from edgekit_runtime.signing import load_trusted_keys

        if not trust and not allow_unsigned:
            raise ConfigError("no --trust key given: pass the signer's .pub, or --allow-unsigned to check hashes only")
        opened = open_verified(bundle, load_trusted_keys(trust), require_signature=not allow_unsigned)
        model = opened.read(opened.model["path"])
        check_confined(model, opened.model["backend"], source=opened.model_source)  # with or without the self-test
        passed = _self_test(opened, model) if self_test else None
    test = "" if passed is None else f", self-test passed ({passed})"
    out.print(
        f"OK {bundle}: {opened.name} {opened.version}, {len(opened.members)} members, {_signed(opened)}{test}",
        soft_wrap=True,
    )


def _self_test(bundle: Bundle, model: bytes) -> str:
    """The golden self-test in the runtime's own backend for the bundle, one thread, as a device runs it."""
    from edgekit.errors import BundleCheckError
    from edgekit_runtime.backends import BackendSettings, open_backend
    from edgekit_runtime.bundle_format import GOLDEN
    from edgekit_runtime.golden import Golden, self_test

    name = str(bundle.model["backend"])
    backend = open_backend(name, model, BackendSettings(threads=1), source=bundle.model_source)
    result = self_test(Golden.from_bytes(bundle.read(GOLDEN)), backend.run)
    if not result.passed:
        raise BundleCheckError(
            f"self-test failed: {result.failure()}: the model does not give the outputs it was bundled with"
        )
    return {"litert": "LiteRT", "onnxruntime": "ONNX Runtime"}.get(name, name)


def convert(
    source: str = typer.Argument(
        ..., help="A scikit-learn pickle/joblib/skops, an MLflow folder, module.py:factory or .pt2."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    input_shape: list[str] = typer.Option([], help="NAME=D1,D2,... example input shapes (PyTorch needs them)."),
    opset: int | None = typer.Option(None, help="ONNX opset [default: 17; PyTorch exports at 18 and up]."),
) -> None:
    """Convert a model to ONNX with edgekit's importers (compress and bundle pack take these sources directly)."""
    with user_errors():
        from edgekit.importers import ImportOptions, import_model
        from edgekit.model_io import save_model

        if output.suffix != ".onnx":
            raise ConfigError(f"-o '{output}' does not end in .onnx: name the ONNX file to write")
        imported = import_model(source, ImportOptions(input_shapes=shapes(input_shape), opset=opset))
        save_model(imported.require_onnx(), output)
    for note in imported.notes:
        out.print(f"note: {note}", soft_wrap=True)
    out.print(f"wrote {output} (from {imported.kind})", soft_wrap=True)
