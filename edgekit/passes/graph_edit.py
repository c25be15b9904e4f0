"""Small in-place graph rewrites the passes share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def drop_unused_opsets(model: onnx.ModelProto) -> None:
    """Remove opset imports no node uses (``quant_pre_process`` adds a dozen); the default domain stays."""
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    if len(keep) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(keep)


def _attr(node: onnx.NodeProto, name: str, default: float) -> float:
    for a in node.attribute:
        if a.name == name:
            return float(a.f if a.type == a.FLOAT else a.i)
    return default


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite plain ``Gemm`` (alpha=beta=1, no transA, weight initializer) as ``MatMul`` + ``Add``, in place.

    ONNX Runtime's dynamic quantizer has no rule for Gemm, and PyTorch exports every
    ``nn.Linear`` as one; as MatMul + Add the weights quantize. The MatMul keeps the Gemm's name
    (so exclusions by name still apply); a transposed weight is added as a new initializer, shared
    by every Gemm that used the original. Returns how many Gemms were rewritten.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    transposed: dict[str, str] = {}
    new_nodes = []
    count = 0
    for node in model.graph.node:
        weight = node.input[1] if node.op_type == "Gemm" and len(node.input) > 1 else None
        plain = _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0 and not _attr(node, "transA", 0)
        if weight is None or weight not in inits or not plain:
            new_nodes.append(node)
            continue
        if _attr(node, "transB", 0):
            if weight not in transposed:
                name = f"{weight}_transposed"
                array = numpy_helper.to_array(inits[weight]).T.copy()
                model.graph.initializer.append(numpy_helper.from_array(array, name))
                transposed[weight] = name
            weight = transposed[weight]
        base = node.name or f"gemm_{count}"
        if len(node.input) > 2 and node.input[2]:  # noqa: PLR2004
            mid = f"{base}_matmul_out"
            new_nodes.append(helper.make_node("MatMul", [node.input[0], weight], [mid], name=base))
            new_nodes.append(helper.make_node("Add", [mid, node.input[2]], [node.output[0]], name=f"{base}_bias"))
        else:
            new_nodes.append(helper.make_node("MatMul", [node.input[0], weight], [node.output[0]], name=base))
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        used = {i for n in model.graph.node for i in n.input}
        kept = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    return count
