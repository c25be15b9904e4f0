"""What the two INT8 passes share: checks that there is something to quantize, and ORT error mapping."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

from edgekit.errors import ConfigError, PassError
from edgekit.graph_stats import quantization_state, weight_stats

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import onnx

    from edgekit_runtime.cpu import CpuInfo

#: weight input index of each op type the quantizers turn into integer kernels
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1, "Gather": 0, "LSTM": 1, "Attention": 1}


def check_op_types(requested: Iterable[str], supported: Iterable[str], mode: str) -> tuple[str, ...]:
    """Refuse op types the quantizer has no rule for, naming the ones it has."""
    requested = tuple(requested)
    known = set(supported)
    unknown = sorted(set(requested) - known)
    if unknown:
        msg = f"{mode} cannot quantize op type(s) {', '.join(unknown)}: choose from {', '.join(sorted(known))}"
        raise ConfigError(msg)
    return requested


def require_float_weights(model: onnx.ModelProto, pass_name: str) -> None:
    """Refuse a model that is already quantized or has no float weights: there is nothing to quantize."""
    state = quantization_state(model)
    if state is not None or weight_stats(model).float_bytes == 0:
        why = f"it is already quantized ({state})" if state else "it has no float initializers"
        raise PassError(f"nothing to quantize: {why}; compress the float original instead", pass_name=pass_name)


def quantizable_nodes(model: onnx.ModelProto, op_types: Iterable[str]) -> list[str]:
    """Names (or positions) of nodes of ``op_types`` whose weight input is a float initializer."""
    floats = {
        t.name
        for t in model.graph.initializer
        if t.data_type in {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
    }
    wanted = set(op_types)
    found = []
    for i, node in enumerate(model.graph.node):
        if node.op_type not in wanted:
            continue
        idx = WEIGHT_INPUT.get(node.op_type)
        inputs = list(node.input) if idx is None else node.input[idx : idx + 1]
        if any(name in floats for name in inputs):
            found.append(node.name or f"#{i}:{node.op_type}")
    return found


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give unnamed nodes stable names, in place, so reports and exclusions can name them."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def quantizer_failed(exc: Exception, pass_name: str, fix: str) -> PassError:
    """Wrap an exception from onnxruntime.quantization in a one-line PassError."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return PassError(f"onnxruntime.quantization failed ({type(exc).__name__}: {first}): {fix}", pass_name=pass_name)


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """Silence onnxruntime.quantization's logging and the calibrators' prints; edgekit reports what matters."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_exclusions(model: onnx.ModelProto, names: Iterable[str]) -> None:
    """Refuse ``--exclude`` names that match no node (after :func:`ensure_node_names`)."""
    known = [n.name for n in model.graph.node]
    unknown = sorted(set(names) - set(known))
    if unknown:
        examples = ", ".join(known[:5])
        msg = f"--exclude names no node called {', '.join(unknown)}: node names look like {examples}"
        raise ConfigError(msg)


def working_copy(model: onnx.ModelProto, pass_name: str, nodes_to_exclude: Iterable[str]) -> onnx.ModelProto:
    """A copy to quantize: refuses models with nothing to quantize, names every node, checks exclusions."""
    import onnx

    require_float_weights(model, pass_name)
    work = onnx.ModelProto()
    work.CopyFrom(model)
    ensure_node_names(work)
    check_exclusions(work, nodes_to_exclude)
    return work


def resolve_reduce_range(configured: bool | None, cpu: CpuInfo) -> bool:
    """The configured ``reduce_range``, or the target CPU's need for it (see :mod:`edgekit_runtime.cpu`)."""
    return cpu.needs_reduce_range if configured is None else configured
