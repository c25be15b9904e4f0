"""The FP16 variant: float16 weights, turned back into float32 by ``DEQUANTIZE`` ops when the model loads.

This is what TensorFlow's converter writes for float16 quantization: each float32 constant is
stored as float16 and feeds a ``DEQUANTIZE`` whose output takes its place, so every compute op
still runs in float32. LiteRT's XNNPACK delegate folds the pairs into float32 weights at load time;
the file is about half the size.
"""

from __future__ import annotations

import numpy as np

from edgekit.tflite.graph import Graph, Operator

_FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16_weights(graph: Graph) -> tuple[int, list[str]]:
    """Store float32 constants as float16 behind ``DEQUANTIZE``; return how many, and warnings.

    Scalars stay float32 (they save nothing), and so does any constant with a value outside the
    float16 range (a MaxPool's padding value, say), which would otherwise become infinite.
    """
    dequantize: list[Operator] = []
    kept_out_of_range = 0
    for index in range(len(graph.tensors)):
        tensor = graph.tensors[index]
        if tensor.data is None or tensor.dtype != np.float32 or tensor.data.size < 2:  # noqa: PLR2004
            continue
        if np.abs(tensor.data).max(initial=0.0) > _FP16_MAX:
            kept_out_of_range += 1
            continue
        half = graph.add_constant(tensor.data.astype(np.float16), f"{tensor.name}_fp16")
        tensor.data = None
        dequantize.append(Operator("DEQUANTIZE", [half], [index]))
    graph.operators[:0] = dequantize
    warnings = []
    if kept_out_of_range:
        warnings.append(f"fp16: {kept_out_of_range} constant(s) outside the float16 range kept in float32")
    return len(dequantize), warnings
