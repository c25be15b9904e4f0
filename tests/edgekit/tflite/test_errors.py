"""What the writer refuses, before it builds or writes anything, and how it says so."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgekit.tflite.conversion as convert_module
from edgekit.errors import ConfigError, EdgekitError, ModelError, TFLiteConversionError
from edgekit.tflite import TFLiteConfig, convert
from tests.edgekit.graphs import make_model
from tests.edgekit.tflite.harness import const, graph


def _unsupported_model():
    """A Conv, two LSTM-free but unsupported ops, and a custom-domain op."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Erf", ["c"], ["e1"], name="erf_1"),
        helper.make_node("Erf", ["e1"], ["e2"], name="erf_2"),
        helper.make_node("Resize", ["e2", "", "s"], ["r"], name="up", mode="cubic"),
        helper.make_node("Pad", ["r", "p"], ["y"], name="pad_edge", mode="edge"),
    ]
    inits = [
        const("w", np.ones((2, 3, 1, 1))),
        const("s", [1, 1, 2, 2]),
        const("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64),
    ]
    return graph(nodes, {"x": (1, 3, 4, 4)}, inits)


def test_every_unsupported_op_is_listed_in_one_line_with_its_nodes():
    with pytest.raises(TFLiteConversionError) as caught:
        convert(_unsupported_model())
    message = str(caught.value)
    assert "\n" not in message
    assert "Erf (2 nodes: erf_1, erf_2)" in message
    assert "Resize mode 'cubic' (node: up)" in message
    assert "Pad mode 'edge' (node: pad_edge)" in message
    assert "--to onnx" in message  # says what to do
    assert ("Erf", "erf_1") in caught.value.nodes
    assert isinstance(caught.value, ModelError)
    assert isinstance(caught.value, EdgekitError)


def test_custom_domain_ops_are_named_with_their_domain():
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Foo", ["r"], ["y"], name="foo", domain="com.acme"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        check=False,
    )
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(TFLiteConversionError, match=r"com\.acme\.Foo \(node: foo\)"):
        convert(model)


def test_a_free_dimension_other_than_the_batch_needs_input_shapes():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    with pytest.raises(
        TFLiteConversionError, match=r"input 'x' has shape \['N', 3, 'H', 'W'\] with a free dimension 2"
    ):
        convert(model)
    converted = convert(model, TFLiteConfig(input_shapes={"x": (1, 3, 5, 7)}))
    assert converted.inputs[0].shape == (1, 3, 5, 7)


def test_input_shapes_for_an_unknown_input_or_of_the_wrong_rank():
    model = graph([helper.make_node("Relu", ["x"], ["y"])], {"x": (1, 4)})
    with pytest.raises(TFLiteConversionError, match="names nope, which the model does not have"):
        convert(model, TFLiteConfig(input_shapes={"nope": (1, 4)}))
    with pytest.raises(TFLiteConversionError, match="has rank 3 but the input has rank 2"):
        convert(model, TFLiteConfig(input_shapes={"x": (1, 4, 1)}))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"variant": "int4"}, "unknown TFLite variant"),
        ({"io_layout": "nchw"}, "unknown io_layout"),
        ({"batch_size": 0}, "batch_size 0 is not positive"),
        ({"input_shapes": {"x": (1, -1)}}, "is not a static shape"),
    ],
)
def test_bad_options_fail_when_the_config_is_made(options, match):
    with pytest.raises(ConfigError, match=match):
        TFLiteConfig(**options)


def test_a_resize_no_tflite_mode_samples_like_is_refused():
    # half_pixel with scale 1.5 on 5 pixels: ONNX maps with 1/1.5, TFLite with 5/7
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["y"], name="up", mode="linear")]
    model = graph(nodes, {"x": (1, 2, 5, 5)}, [const("s", [1, 1, 1.5, 1.5])])
    with pytest.raises(
        TFLiteConversionError, match=r"Resize \(linear, half_pixel, round_prefer_floor\) at these sizes"
    ):
        convert(model)


def test_clip_with_run_time_bounds_is_refused():
    nodes = [helper.make_node("Clip", ["x", "lo"], ["y"], name="clip")]
    model = graph(nodes, {"x": (1, 4), "lo": ()})
    with pytest.raises(TFLiteConversionError, match=r"Clip with bounds computed at run time \(node: clip\)"):
        convert(model)


def test_nothing_is_built_when_a_check_fails(monkeypatch):
    def fail(*_args, **_kwargs):
        pytest.fail("the graph was built although a check failed")

    monkeypatch.setattr(convert_module, "build", fail)
    monkeypatch.setattr(convert_module, "serialize", fail)
    with pytest.raises(TFLiteConversionError):
        convert(_unsupported_model())


def test_the_callers_model_is_not_changed(digits):
    model = onnx.load(str(digits / "cnn.onnx"))
    before = model.SerializeToString()
    convert(model)
    assert model.SerializeToString() == before


def test_a_float16_model_is_refused_with_the_way_to_get_fp16():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])],
    )
    with pytest.raises(TFLiteConversionError, match=r"Relu on float16 tensors \(convert the float32 model\)"):
        convert(model)
