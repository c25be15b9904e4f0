"""Graph rewrites before conversion that leave fewer, bigger TFLite ops, as TensorFlow's converter would.

- ``Conv → BatchNormalization`` becomes one ``Conv`` (the statistics folded into weights and bias);
- ``Conv → Add(per-channel constant)`` becomes one ``Conv`` with that bias;
- ``MatMul(x[M, K], W) → Add(b[N])`` becomes ``Gemm``, which converts to one ``FULLY_CONNECTED``.

Each rewrite needs the intermediate value to have no other reader and not to be a graph output.
Node names are unique here (``ensure_node_names`` ran), so nodes are matched by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx


def _single_consumer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    """The only node reading ``name``, when there is exactly one and ``name`` is not a graph output."""
    if name in {o.name for o in graph.output}:
        return None
    readers = [n for n in graph.node if name in n.input]
    return readers[0] if len(readers) == 1 else None


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:  # noqa: ANN401
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _replace_init(graph: onnx.GraphProto, name: str, array: np.ndarray) -> str:
    """Add ``array`` as a new initializer named after ``name``; return the new name."""
    from onnx import numpy_helper

    taken = {t.name for t in graph.initializer}
    new = f"{name}_folded"
    while new in taken:
        new += "_"
    graph.initializer.append(numpy_helper.from_array(array, new))
    return new


def _drop_nodes(graph: onnx.GraphProto, dropped: set[str]) -> None:
    """Remove the nodes named in ``dropped`` (names are unique: ``ensure_node_names`` ran) and unused initializers."""
    if not dropped:
        return
    kept = [n for n in graph.node if n.name not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _conv_params(graph: onnx.GraphProto, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    if conv.op_type != "Conv" or len(conv.input) < 2 or conv.input[1] not in inits:  # noqa: PLR2004
        return None
    w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float32)
    if len(conv.input) > 2 and conv.input[2]:  # noqa: PLR2004
        if conv.input[2] not in inits:
            return None
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float32)
    else:
        b = np.zeros(w.shape[0], np.float32)
    return w, b


def _set_conv_params(graph: onnx.GraphProto, conv: onnx.NodeProto, w: np.ndarray, b: np.ndarray) -> None:
    conv.input[1] = _replace_init(graph, conv.input[1], w.astype(np.float32))
    bias = _replace_init(graph, f"{conv.name}_bias", b.astype(np.float32))
    if len(conv.input) > 2:  # noqa: PLR2004
        conv.input[2] = bias
    else:
        conv.input.append(bias)


def fold_batchnorm(model: onnx.ModelProto) -> None:
    """``Conv → BatchNormalization`` with constant parameters becomes one ``Conv``."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    dropped: set[str] = set()
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1 or any(i not in inits for i in bn.input[1:5]):
            continue
        conv = producers.get(bn.input[0])
        params = _conv_params(graph, conv) if conv is not None else None
        reader = _single_consumer(graph, bn.input[0])
        if conv is None or params is None or reader is None or reader.name != bn.name:
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        scale = gamma / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
        w, b = params
        w = w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))
        _set_conv_params(graph, conv, w, (b.astype(np.float64) - mean) * scale + beta)
        conv.output[0] = bn.output[0]
        dropped.add(bn.name)
    _drop_nodes(graph, dropped)


def fold_conv_add(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """``Conv → Add(per-channel constant)`` becomes one ``Conv`` with that bias."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    dropped: set[str] = set()
    for add in list(graph.node):
        if add.op_type != "Add" or len(add.input) != 2:  # noqa: PLR2004
            continue
        x, c = (add.input[0], add.input[1]) if add.input[1] in inits else (add.input[1], add.input[0])
        conv = producers.get(x)
        params = _conv_params(graph, conv) if conv is not None and c in inits else None
        reader = _single_consumer(graph, x)
        if conv is None or params is None or reader is None or reader.name != add.name or x not in shapes:
            continue
        w, b = params
        const = numpy_helper.to_array(inits[c])
        rank = len(shapes[x])
        if const.ndim > rank:
            continue
        full = (1,) * (rank - const.ndim) + const.shape
        if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, w.shape[0]):
            continue
        _set_conv_params(graph, conv, w, b + np.broadcast_to(const.reshape(-1), b.shape))
        conv.output[0] = add.output[0]
        dropped.add(add.name)
    _drop_nodes(graph, dropped)


def matmul_add_to_gemm(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """``MatMul(x[M, K], W) → Add(b[N])`` becomes ``Gemm`` (one FULLY_CONNECTED with a bias)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes = []
    dropped = set()
    for node in graph.node:
        if node.name in dropped:
            continue
        add = _single_consumer(graph, node.output[0]) if node.op_type == "MatMul" else None
        if add is None or add.op_type != "Add" or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        a_shape = shapes.get(node.input[0], ())
        w = inits[node.input[1]]
        b = numpy_helper.to_array(inits[bias]) if bias in inits else None
        if len(a_shape) != 2 or len(w.dims) != 2 or b is None or b.size != w.dims[1] or b.ndim > 2:  # noqa: PLR2004
            new_nodes.append(node)
            continue
        gemm = helper.make_node("Gemm", [node.input[0], node.input[1], bias], [add.output[0]], name=node.name)
        new_nodes.append(gemm)
        dropped.add(add.name)
    if dropped:
        del graph.node[:]
        graph.node.extend(new_nodes)
