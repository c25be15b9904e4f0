"""Every ONNX op the TFLite writer converts, in one table, with the check each runs before any conversion.

A rule is a converter, ``convert(node, ctx)``, that appends TFLite operators for one ONNX node,
and a check, ``check(node, prepared) -> reason | None``, for the attributes and inputs the
converter cannot express. The writer runs every check first, so a model with anything
unsupported fails before a byte is written, with every problem listed at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit.tflite.ops import conv, dense, elementwise, pad, reduce, resize, shape

if TYPE_CHECKING:
    from collections.abc import Callable

    import onnx

    from edgekit.tflite.context import Context
    from edgekit.tflite.prepare import Prepared

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _always(node: onnx.NodeProto, prepared: Prepared) -> str | None:  # noqa: ARG001
    return None


@dataclass(frozen=True)
class OpRule:
    """How one ONNX op type converts."""

    convert: Callable[[onnx.NodeProto, Context], None]
    check: Callable[[onnx.NodeProto, Prepared], str | None] = _always


RULES: dict[str, OpRule] = {
    **{op: OpRule(elementwise.binary, elementwise.check_binary) for op in elementwise.BINARY},
    **{op: OpRule(elementwise.unary) for op in elementwise.UNARY},
    "LeakyRelu": OpRule(elementwise.leaky_relu),
    "PRelu": OpRule(elementwise.prelu),
    "Clip": OpRule(elementwise.clip, elementwise.check_clip),
    "HardSigmoid": OpRule(elementwise.hard_sigmoid),
    "BatchNormalization": OpRule(elementwise.batchnorm, elementwise.check_batchnorm),
    "Identity": OpRule(elementwise.identity),
    "Dropout": OpRule(elementwise.identity, elementwise.check_dropout),
    "Cast": OpRule(elementwise.cast, elementwise.check_cast),
    "Conv": OpRule(conv.conv, conv.check_conv),
    "MaxPool": OpRule(conv.pool, conv.check_pool),
    "AveragePool": OpRule(conv.pool, conv.check_pool),
    "GlobalAveragePool": OpRule(conv.global_pool),
    "GlobalMaxPool": OpRule(conv.global_pool),
    "Gemm": OpRule(dense.gemm, dense.check_gemm),
    "MatMul": OpRule(dense.matmul, dense.check_matmul),
    "Reshape": OpRule(shape.reshape, shape.check_reshape),
    "Flatten": OpRule(shape.reshape, shape.check_reshape),
    "Squeeze": OpRule(shape.squeeze, shape.check_axes_constant),
    "Unsqueeze": OpRule(shape.unsqueeze, shape.check_axes_constant),
    "Transpose": OpRule(shape.transpose),
    "Concat": OpRule(shape.concat),
    "Softmax": OpRule(reduce.softmax),
    "LogSoftmax": OpRule(reduce.softmax),
    **{op: OpRule(reduce.reduce, reduce.check_reduce) for op in reduce.REDUCERS},
    "ArgMax": OpRule(reduce.argmax, reduce.check_argmax),
    "ai.onnx.ml.ArrayFeatureExtractor": OpRule(reduce.feature_extractor, reduce.check_feature_extractor),
    "Pad": OpRule(pad.pad, pad.check_pad),
    "Resize": OpRule(resize.resize, resize.check_resize),
}


def rule_key(node: onnx.NodeProto) -> str:
    """The table key of a node: its op type, prefixed by its domain outside the default one."""
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


__all__ = ["RULES", "OpRule", "rule_key"]
