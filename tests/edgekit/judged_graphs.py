"""An embedding model and a logits model for the output judgements, and a way to break a candidate.

``embedding_model`` ends in ``LpNormalization``: ``[N, 16]`` unit rows named ``embeddings``, whose argmax
means nothing. ``logits_model`` is the same projection named ``logits``, unnormalised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgekit import passes
from tests.edgekit.graphs import FLOAT, make_model, weight

if TYPE_CHECKING:
    import pytest

    from edgekit.passes.base import PassContext, PassOutput

FEATURES, WIDTH = 32, 16


def embedding_model(seed: int = 0) -> onnx.ModelProto:
    """``x [N, 32] → MatMul → Relu → MatMul → LpNormalization → embeddings [N, 16]``."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["e"], name="proj2"),
        helper.make_node("LpNormalization", ["e"], ["embeddings"], name="norm", axis=1, p=2),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("embeddings", FLOAT, ["N", WIDTH])],
        [weight(rng, "w1", FEATURES, 64), weight(rng, "w2", 64, WIDTH)],
    )


def logits_model(seed: int = 0) -> onnx.ModelProto:
    """``x [N, 32] → MatMul → logits [N, 10]``."""
    rng = np.random.default_rng(seed)
    return make_model(
        [helper.make_node("MatMul", ["x", "w"], ["logits"], name="head")],
        [helper.make_tensor_value_info("x", FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("logits", FLOAT, ["N", 10])],
        [weight(rng, "w", FEATURES, 10)],
    )


def break_dynamic_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the dynamic INT8 pass declare its outputs float16 while they stay float: ORT refuses to load it."""
    original = passes.QuantizeDynamic.run

    def broken(self: passes.QuantizeDynamic, model: onnx.ModelProto, ctx: PassContext) -> PassOutput:
        out = original(self, model, ctx)
        for output in out.model.graph.output:
            output.type.tensor_type.elem_type = TensorProto.FLOAT16
        return out

    monkeypatch.setattr(passes.QuantizeDynamic, "run", broken)
