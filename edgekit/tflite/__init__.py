"""ONNX → TFLite FlatBuffer writer, with no TensorFlow.

``convert(model, TFLiteConfig(...))`` returns a :class:`TFLiteModel` (the bytes, and the layout of
each input and output). The graph is converted from NCHW to NHWC as TFLite's kernels want it; the
``.tflite`` file is written with the ``tflite`` package's generated FlatBuffer builders.

The modules, in the order a conversion uses them: :mod:`~edgekit.tflite.prepare` (static shapes,
folding), :mod:`~edgekit.tflite.ops` (one converter and one check per ONNX op),
:mod:`~edgekit.tflite.context` and :mod:`~edgekit.tflite.layout` (values and their layouts),
:mod:`~edgekit.tflite.graph` (the TFLite graph in memory), :mod:`~edgekit.tflite.optimize`,
:mod:`~edgekit.tflite.fp16`, :mod:`~edgekit.tflite.flatbuffer` (the bytes).
"""

from __future__ import annotations

from edgekit.tflite.config import TensorLayout, TFLiteConfig, TFLiteModel
from edgekit.tflite.conversion import convert

__all__ = ["TFLiteConfig", "TFLiteModel", "TensorLayout", "convert"]
