"""PyTorch models, exported to ONNX with ``torch.onnx.export``'s dynamo path (``edgekit[torch]``).

Two sources::

    module.py:factory   the file is imported by path; ``factory()`` returns the ``nn.Module``
    model.pt2           an ExportedProgram saved with ``torch.export.save``

A module is traced on float32 zeros of the ``--input-shape`` shapes, in the order given (integer inputs
need a ``.pt2``, which carries its own inputs), with the first axis of every input dynamic and named
``batch``. A ``.pt2`` keeps the shapes it was exported with; ``--input-shape`` only names its inputs.
Outputs are named ``output``, or ``output_0``, ``output_1``... when there are several.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import itertools
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from edgekit.errors import MissingExtraError, ModelError
from edgekit.importers.base import Imported, ImportOptions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

    import onnx
    import torch

#: torch's dynamo exporter writes opset 18 and newer; a lower target is reached with onnx's version converter
TORCH_MIN_OPSET = 18
_FEATURE = "exporting PyTorch models"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_module_ids = itertools.count()


def import_torch(source: str, options: ImportOptions) -> Imported:
    """Export ``module.py:factory`` or an ExportedProgram ``.pt2`` to ONNX."""
    _require_torch()
    if source.lower().endswith(".pt2"):
        return _import_program(Path(source), options, source=source)
    file, _, name = source.rpartition(":")
    module = _call_factory(Path(file), name, source)
    return import_torch_module(module, options, source=source)


def import_torch_module(module: torch.nn.Module, options: ImportOptions, *, source: str) -> Imported:
    """Export ``module`` (put in eval mode) on float32 example inputs of ``options.input_shapes``."""
    _require_torch()
    import torch

    if not options.input_shapes:
        raise ModelError("PyTorch models need example input shapes: pass --input-shape input=1,3,224,224")
    module.eval()
    args = tuple(torch.zeros(dims) for _, dims in options.input_shapes)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} if dims else None for _, dims in options.input_shapes)
    names = [name for name, _ in options.input_shapes]
    return _export(module, args, dynamic, names, options, source=source)


def _import_program(path: Path, options: ImportOptions, *, source: str) -> Imported:
    import torch

    if not path.is_file():
        raise ModelError(f"ExportedProgram file '{path}' does not exist: check the path", path=path)
    try:
        with _quiet():
            program = torch.export.load(path)
    except Exception as exc:
        raise ModelError(
            f"'{path}' is not a readable ExportedProgram ({_first_line(exc)}): save it with torch.export.save",
            path=path,
        ) from exc
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    values = [placeholders[name].meta.get("val") for name in program.graph_signature.user_inputs]
    shapes = [tuple(getattr(value, "shape", ())) for value in values]
    names = list(program.graph_signature.user_inputs)
    if options.input_shapes:
        if len(options.input_shapes) != len(shapes):
            raise ModelError(
                f"'{path}' takes {len(shapes)} input(s), not {len(options.input_shapes)}: pass one --input-shape each",
                path=path,
            )
        for (name, dims), exported in zip(options.input_shapes, shapes, strict=True):
            if len(dims) != len(exported) or any(
                isinstance(e, int) and e != d for d, e in zip(dims, exported, strict=True)
            ):
                raise ModelError(
                    f"input '{name}' of '{path}' was exported with shape {list(exported)}, not {list(dims)}: "
                    "pass its shape, or leave --input-shape out",
                    path=path,
                )
        names = [name for name, _ in options.input_shapes]
    return _export(program, (), None, names, options, source=source)


def _export(
    model: Any,  # noqa: ANN401  (an nn.Module or an ExportedProgram)
    args: tuple[Any, ...],
    dynamic: tuple[Any, ...] | None,
    names: list[str],
    options: ImportOptions,
    *,
    source: str,
) -> Imported:
    """Run torch.onnx.export (dynamo), name the outputs, bring the opset down to the one asked for."""
    import onnx
    import torch

    opset = max(options.opset or TORCH_MIN_OPSET, TORCH_MIN_OPSET)
    try:
        with torch.no_grad(), _quiet():
            exported = torch.onnx.export(
                model,
                args,
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=names,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as exc:
        raise ModelError(
            f"'{source}' does not export to ONNX ({_first_line(exc)}): "
            "check that the module exports with torch.export.export(module, args)"
        ) from exc
    program = cast("torch.onnx.ONNXProgram", exported)  # None only from the legacy exporter
    outputs = program.model.graph.outputs
    for index, value in enumerate(outputs):
        value.name = "output" if len(outputs) == 1 else f"output_{index}"
    proto: onnx.ModelProto = program.model_proto
    notes = [f"exported with torch.onnx.export (dynamo, torch {torch.__version__}) at opset {opset}"]
    if options.opset is not None and options.opset < opset:
        try:
            proto = onnx.version_converter.convert_version(proto, options.opset)
            notes.append(f"converted to opset {options.opset} with onnx's version converter")
        except (RuntimeError, ValueError):  # e.g. "No Adapter To Version $17 for Pad": keep the opset 18 model
            notes.append(f"kept at opset {opset}: onnx cannot convert this model to opset {options.opset}")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"the ONNX model exported from '{source}' is invalid ({_first_line(exc)}): report it") from exc
    notes.extend(_static_batch_notes(proto))
    return Imported("torch", source, model=proto, notes=tuple(notes))


def _static_batch_notes(model: onnx.ModelProto) -> list[str]:
    """One note per input whose first axis torch could not keep dynamic."""
    notes = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            notes.append(
                f"input '{value.name}' has a fixed batch of {dims[0].dim_value}: the model's code specializes it, "
                "or the .pt2 was exported without dynamic_shapes"
            )
    return notes


def _call_factory(path: Path, name: str, source: str) -> torch.nn.Module:
    """Import ``path``, call its ``name()`` and check it returned an ``nn.Module``."""
    import torch

    module = _load_module(path)
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(
            key
            for key, value in vars(module).items()
            if callable(value) and not key.startswith("_") and getattr(value, "__module__", None) == module.__name__
        )
        listing = f"it defines {', '.join(found[:5])}" if found else "it defines no functions or classes"
        raise ModelError(f"'{path}' has no callable '{name}' ({listing}): pass {path}:NAME", path=path)
    _check_no_arguments(factory, name, path)
    try:
        model = factory()
    except Exception as exc:
        raise ModelError(f"'{source}' raised {_first_line(exc)}: fix the factory", path=path) from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelError(
            f"'{source}' returned a {type(model).__name__}, not a torch.nn.Module: make it return the model",
            path=path,
        )
    return model


def _check_no_arguments(factory: Callable[..., object], name: str, path: Path) -> None:
    """Refuse a factory that cannot be called with no arguments, before calling it."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): calling it will tell
        return
    try:
        signature.bind()
    except TypeError as exc:
        raise ModelError(
            f"'{name}' in '{path}' needs arguments ({exc}): make it callable with no arguments, e.g. functools.partial",
            path=path,
        ) from exc


def _load_module(path: Path) -> ModuleType:
    """Import a Python file by path under a unique name, its folder on sys.path only meanwhile."""
    if not path.is_file():
        raise ModelError(f"module file '{path}' does not exist: check the path before ':factory'", path=path)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_edgekit_torch_{next(_module_ids)}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"'{path}' cannot be imported as a Python module: pass a .py file", path=path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.modules[name] = module  # dataclasses and pickle look the module up by name
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise ModelError(f"importing '{path}' raised {_first_line(exc)}: fix the module", path=path) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _require_torch() -> None:
    """Check that torch, and the onnxscript its exporter needs, are installed."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(_FEATURE, "torch", "torch") from exc
    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(_FEATURE, "torch", "onnxscript") from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep torch's export chatter out of the user's output; failures come back as our one-line errors."""
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),  # partial graphs of a failed torch.export are printed here
    ):
        # torch 2.13's own export deep-copies a deprecated pytree LeafSpec: not the user's to fix
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        # every input's first axis is the one Dim "batch": torch warns that it names the shared symbol only once
        warnings.filterwarnings(
            "ignore", r"# The axis name: batch will not be used, .* another axis: batch\.", UserWarning
        )
        for logger in loggers:  # "opset 18 instead of 17" is noted; errors come back as a ModelError
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    """``Type: first line`` of the error that caused ``exc`` (torch wraps the useful one)."""
    cause = exc.__cause__ if exc.__cause__ is not None and type(exc).__module__.startswith("torch.onnx") else exc
    lines = [line.strip() for line in _ANSI.sub("", str(cause)).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"
    return f"{type(cause).__name__}: {text[:200]}"
