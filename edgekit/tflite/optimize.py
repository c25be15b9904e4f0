"""Clean-ups on the built TFLite graph: fused activations, and tensors no operator uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.tflite.graph import FUSABLE_ACTIVATIONS

if TYPE_CHECKING:
    from edgekit.tflite.graph import Graph

#: ops whose kernels (builtin and XNNPACK) apply a fused activation
_FUSING_OPS = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "SUB",
    "MUL",
    "DIV",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
}


def fuse_activations(graph: Graph) -> int:
    """Fold ``RELU``/``RELU6``/``RELU_N1_TO_1`` into the op before it where that op can; return how many."""
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            readers.setdefault(t, []).append(i)
    gone: set[int] = set()
    for op in graph.operators:
        if op.opcode not in _FUSING_OPS or op.options is None or len(op.outputs) != 1:
            continue
        if op.options.fields.get("FusedActivationFunction") != "NONE" or op.outputs[0] in graph.outputs:
            continue
        users = readers.get(op.outputs[0], [])
        if len(users) != 1 or users[0] in gone:
            continue
        activation = graph.operators[users[0]]
        if activation.opcode not in FUSABLE_ACTIVATIONS:
            continue
        op.options = op.options.replace(FusedActivationFunction=FUSABLE_ACTIVATIONS[activation.opcode])
        op.outputs = list(activation.outputs)
        gone.add(users[0])
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in gone]
    return len(gone)


def drop_unused_tensors(graph: Graph) -> int:
    """Remove tensors nothing reads or writes and renumber the rest; return how many went."""
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.operators:
        used.update(t for t in op.inputs if t >= 0)
        used.update(op.outputs)
    keep = [i for i in range(len(graph.tensors)) if i in used]
    if len(keep) == len(graph.tensors):
        return 0
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(t: int) -> int:
        return new_index[t] if t >= 0 else t

    dropped = len(graph.tensors) - len(keep)
    graph.tensors = [graph.tensors[i] for i in keep]
    for op in graph.operators:
        op.inputs = [remap(t) for t in op.inputs]
        op.outputs = [remap(t) for t in op.outputs]
    graph.inputs = [remap(t) for t in graph.inputs]
    graph.outputs = [remap(t) for t in graph.outputs]
    graph.signature_inputs = {k: remap(t) for k, t in graph.signature_inputs.items()}
    graph.signature_outputs = {k: remap(t) for k, t in graph.signature_outputs.items()}
    return dropped
