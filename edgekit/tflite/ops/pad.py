"""``Pad`` → ``PAD``/``PADV2`` (constant) or ``MIRROR_PAD`` (reflect), in the input's layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgekit.tflite.context import attrs
from edgekit.tflite.graph import Options
from edgekit.tflite.ops.conv import pad as pad_tensor

if TYPE_CHECKING:
    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

_INPUT_PADS_OPSET = 11  # pads and value became inputs in opset 11


def _mode(node: onnx.NodeProto) -> str:
    mode = attrs(node).get("mode", b"constant")
    return mode.decode() if isinstance(mode, bytes) else str(mode)


def _pads(node: onnx.NodeProto, prepared: Prepared) -> tuple[list[tuple[int, int]], float] | None:
    """``(begin, end)`` per ONNX axis and the fill value, or ``None`` when they are computed at run time."""
    rank = len(prepared.shapes[node.input[0]])
    if prepared.opset < _INPUT_PADS_OPSET:
        a = attrs(node)
        flat = [int(p) for p in a.get("pads", [0] * 2 * rank)]
        return [(flat[i], flat[rank + i]) for i in range(rank)], float(a.get("value", 0.0))
    inputs = list(node.input) + [""] * (4 - len(node.input))
    if any(name and name not in prepared.constants for name in inputs[1:4]):
        return None
    flat = [int(p) for p in prepared.constants[inputs[1]].reshape(-1)]
    value = float(prepared.constants[inputs[2]].reshape(-1)[0]) if inputs[2] else 0.0
    axes = [int(a) % rank for a in prepared.constants[inputs[3]].reshape(-1)] if inputs[3] else list(range(rank))
    pads = [(0, 0)] * rank
    for i, ax in enumerate(axes):
        pads[ax] = (flat[i], flat[len(axes) + i])
    return pads, value


def check_pad(node: onnx.NodeProto, prepared: Prepared) -> str | None:
    """Constant, non-negative pads; constant or reflect mode."""
    mode = _mode(node)
    if mode not in ("constant", "reflect"):
        return f"Pad mode '{mode}'"
    found = _pads(node, prepared)
    if found is None:
        return "Pad with pads computed at run time"
    if any(p < 0 for pair in found[0] for p in pair):
        return "Pad with negative pads (cropping)"
    return None


def pad(node: onnx.NodeProto, ctx: Context) -> None:
    """Pad in whatever layout the input is held."""
    found = _pads(node, ctx.prepared)
    if found is None:  # refused by check_pad
        return
    pads, value = found
    x, out = node.input[0], node.output[0]
    perm = ctx.perm(x)
    paddings = [pads[p] for p in perm]
    if _mode(node) == "reflect":
        amounts = ctx.const(np.asarray(paddings, dtype=np.int32), f"{node.name}_paddings")
        options = Options("MirrorPadOptions", {"Mode": "REFLECT"})
        ctx.emit("MIRROR_PAD", [ctx.tensor(x), amounts], out, perm, options)
        return
    padded = pad_tensor(ctx, ctx.tensor(x), paddings, value, node.name)
    ctx.graph.rename(padded, out)
    ctx.bind(out, padded, perm)
