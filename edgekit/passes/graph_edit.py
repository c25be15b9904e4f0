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
    ``nn.Linear`` as one; as MatMul + Add the weights quantize. Returns how many were rewritten.
    """
    from onnx import helper, numpy_helper  # noqa: PLC0415

    inits = {t.name: i for i, t in enumerate(model.graph.initializer)}
    new_nodes = []
    count = 0
    for node in model.graph.node:
        weight = node.input[1] if node.op_type == "Gemm" and len(node.input) > 1 else None
        plain = _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0 and not _attr(node, "transA", 0)
        if weight is None or weight not in inits or not plain:
            new_nodes.append(node)
            continue
        tensor = model.graph.initializer[inits[weight]]
        if _attr(node, "transB", 0):
            array = numpy_helper.to_array(tensor).T.copy()
            tensor.CopyFrom(numpy_helper.from_array(array, f"{weight}_t"))
            weight = tensor.name
            inits[weight] = inits.pop(node.input[1])
        base = node.name or f"gemm_{count}"
        if len(node.input) > 2 and node.input[2]:  # noqa: PLR2004
            mid = f"{base}_matmul_out"
            new_nodes.append(helper.make_node("MatMul", [node.input[0], weight], [mid], name=f"{base}_MatMul"))
            new_nodes.append(helper.make_node("Add", [mid, node.input[2]], [node.output[0]], name=f"{base}_Add"))
        else:
            new_nodes.append(
                helper.make_node("MatMul", [node.input[0], weight], [node.output[0]], name=f"{base}_MatMul")
            )
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    return count
