"""A model reaches nothing outside its bundle: the attack, then every way out the check refuses, and what passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto
from onnx import helper as oh

from edgekit_runtime import LoadOptions, load
from edgekit_runtime.backends import BackendSettings
from edgekit_runtime.backends import onnxruntime as ort_backend
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import GOLDEN
from edgekit_runtime.confinement import Limits, check_confined
from edgekit_runtime.confinement import onnx_reader as conf
from edgekit_runtime.errors import BundleError, UnsafeModelError
from edgekit_runtime.golden import Golden, self_test
from edgekit_runtime.signing import load_public_key
from tests.models import cached

from .unsafe_models import (
    PLACES,
    SECRET,
    STOLEN_FILE,
    TRIGGER,
    custom_domain_model,
    external,
    external_data_in,
    leaking_model,
    model_bundle,
    plain_model,
    tflite_model,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "digits" / "mlp.onnx",
    ROOT / "examples" / "digits" / "cnn.onnx",
    ROOT / "examples" / "blazeface" / "face_detection_short_range.tflite",
]
FUZZ = settings(
    max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
ONE_THREAD = BackendSettings(threads=1)


def refused(data: bytes, backend: str = "onnxruntime", **kwargs) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as caught:
        check_confined(data, backend, source="model", **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


def checked(data: bytes, backend: str) -> str:
    """The refusal's message, or "" when the model passes; any other exception fails the test."""
    try:
        check_confined(data, backend, source="model")
    except UnsafeModelError as error:
        return str(error)
    return ""


@pytest.fixture
def trusted(keys):
    return [load_public_key(keys[1])]


@pytest.fixture
def secret_beside_cwd(tmp_path, monkeypatch):
    """The device's working directory holds a file the service can read (``/`` under systemd)."""
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / STOLEN_FILE).write_bytes(SECRET)
    monkeypatch.chdir(workdir)
    return workdir


# -- the attack -----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("secret_beside_cwd")
def test_the_attack_without_the_check_a_signed_bundle_leaks_a_file_and_passes_its_self_test(
    tmp_path, keys, trusted, monkeypatch
):
    bundle = model_bundle(tmp_path / "leak-1.0.0.edgebundle", leaking_model().SerializeToString(), keys[0])
    monkeypatch.setattr(ort_backend, "check_confined", lambda *_, **__: None)  # the runtime as it was
    model = load(bundle, LoadOptions(trusted_keys=trusted))
    assert model.signer == trusted[0].key_id
    assert model.self_test is not None
    assert model.self_test.passed
    leaked = model.predict({"x": np.array([[TRIGGER]], np.float32)})["leak"]
    assert bytes(leaked.astype(np.uint8)[0]) == SECRET


@pytest.mark.usefixtures("secret_beside_cwd")
def test_the_attack_is_refused_before_any_session_exists(tmp_path, keys, trusted, monkeypatch):
    bundle = model_bundle(tmp_path / "leak-1.0.0.edgebundle", leaking_model().SerializeToString(), keys[0])

    def no_session(*_, **__):
        pytest.fail("a session was created for a model that reaches outside its bundle")

    monkeypatch.setattr(ort, "InferenceSession", no_session)
    with pytest.raises(UnsafeModelError) as caught:
        load(bundle, LoadOptions(trusted_keys=trusted))
    assert str(caught.value) == (
        "model 'leak-1.0.0.edgebundle/model.onnx' keeps initializer 'secret' (in the main graph) in the external "
        "file 'secret.txt', outside the bundle: save the model as one file (onnx.save_model(model, path, "
        "save_as_external_data=False)) and rebuild the bundle"
    )
    assert (caught.value.reason, caught.value.source) == ("external-data", "leak-1.0.0.edgebundle/model.onnx")
    assert isinstance(caught.value, BundleError)
    assert caught.value.exit_code == 3


@pytest.mark.usefixtures("secret_beside_cwd")
def test_its_golden_self_test_alone_would_not_catch_it(tmp_path, keys):
    bundle = open_bundle(model_bundle(tmp_path / "l.edgebundle", leaking_model().SerializeToString(), keys[0]))
    session = ort.InferenceSession(bundle.read("model.onnx"), providers=["CPUExecutionProvider"])
    result = self_test(Golden.from_bytes(bundle.read(GOLDEN)), lambda feeds: {"leak": session.run(None, feeds)[0]})
    assert result.passed


# -- ONNX: every way out --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("place", PLACES)
def test_external_data_is_refused_wherever_it_is(place):
    error = refused(external_data_in(place).SerializeToString())
    assert error.reason == "external-data"
    assert "in the external file" in str(error)


@pytest.mark.parametrize(
    ("place", "words"),
    [
        ("Constant node", "tensor 'secret_t' (in attribute 'value' of node 'const_secret' (Constant), in the main"),
        ("If subgraph", "in subgraph 'then_branch' of node 'pick' (If)"),
        ("Loop inside an If subgraph", "in subgraph 'body' of node 'loop' (Loop)"),
        ("sparse initializer", "sparse initializer values 'secret_values'"),
        ("model-local function", "in function 'local.fns:Secret'"),
        ("training graph", "initializer 'secret' (in a training graph)"),
        ("initializer, absolute path", "the external file '/etc/hostname'"),
    ],
)
def test_the_refusal_says_where_the_tensor_is(place, words):
    assert words in str(refused(external_data_in(place).SerializeToString()))


def test_either_half_of_external_data_is_enough_to_refuse():
    location_only = leaking_model()
    location_only.graph.initializer[0].ClearField("external_data")
    assert refused(location_only.SerializeToString()).reason == "external-data"
    entries_only = leaking_model()
    entries_only.graph.initializer[0].ClearField("data_location")
    assert "'secret.txt'" in str(refused(entries_only.SerializeToString()))


def test_a_custom_domain_op_is_refused_and_a_model_local_function_is_not():
    error = refused(custom_domain_model().SerializeToString())
    assert error.reason == "custom-op"
    assert "op 'Double' from domain 'my.ops' (node 'double' (Double) in the main graph)" in str(error)
    local = custom_domain_model(as_function=True).SerializeToString()
    check_confined(local, "onnxruntime", source="model")
    backend = ort_backend.open_model(local, ONE_THREAD)
    np.testing.assert_array_equal(backend.run({"x": np.ones((1, 1), np.float32)})["leak"], [[2.0]])


def test_a_python_op_is_refused():
    model = plain_model()
    model.graph.node[0].CopyFrom(oh.make_node("PyOp", ["x"], ["leak"], domain="com.microsoft", module="os"))
    assert "op 'PyOp' from domain 'com.microsoft'" in str(refused(model.SerializeToString()))


@pytest.mark.parametrize("domain", sorted(conf.ONNX_DOMAINS - {""}))
def test_onnx_runtime_s_own_domains_pass(domain):
    model = plain_model()
    model.graph.node[0].domain = domain
    check_confined(model.SerializeToString(), "onnxruntime", source="model")


def test_session_settings_in_the_model_are_refused():
    model = plain_model()
    oh.set_model_props(model, {"ort_config": '{"session_options": {"enable_profiling": 1}}'})
    assert refused(model.SerializeToString()).reason == "session-config"
    ordinary = plain_model()
    oh.set_model_props(ordinary, {"author": "someone", "license": "MIT"})
    check_confined(ordinary.SerializeToString(), "onnxruntime", source="model")


def test_session_settings_are_refused_where_the_environment_would_apply_them(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORT_LOAD_CONFIG_FROM_MODEL", "1")  # ONNX Runtime then profiles into the working directory
    model = plain_model()
    oh.set_model_props(model, {"ort_config": '{"session_options": {"enable_profiling": 1}}'})
    onnx.save_model(model, "profiled.onnx")
    with pytest.raises(UnsafeModelError, match="'ort_config' metadata"):
        load("profiled.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["profiled.onnx"]
    with monkeypatch.context() as unchecked:  # what it would do: the model turns profiling on, a file appears
        unchecked.setattr(ort_backend, "check_confined", lambda *_, **__: None)
        load("profiled.onnx", LoadOptions(warmup=1))
    assert any(p.name.startswith("onnxruntime_profile_") for p in tmp_path.iterdir())
    for profile in tmp_path.glob("onnxruntime_profile_*"):
        profile.unlink()
    onnx.save_model(plain_model(), "plain.onnx")
    assert load("plain.onnx").predict({"x": np.ones((1, 1), np.float32)})["leak"].tolist() == [[2.0]]


@pytest.mark.parametrize(("embed_mode", "allowed"), [(None, True), (1, True), (0, False)])
def test_an_ep_context_engine_in_a_file_is_refused(embed_mode, allowed):
    attrs = {"ep_cache_context": "engine.bin"} | ({} if embed_mode is None else {"embed_mode": embed_mode})
    node = oh.make_node("EPContext", ["x"], ["leak"], name="ctx", domain="com.microsoft", **attrs)
    model = plain_model()
    model.graph.ClearField("node")
    model.graph.node.append(node)
    if allowed:
        check_confined(model.SerializeToString(), "onnxruntime", source="model")
    else:
        error = refused(model.SerializeToString())
        assert (error.reason, "embed_mode is not 1" in str(error)) == ("ep-context-file", True)


def test_an_ort_format_model_is_refused():
    assert refused(b"\x1c\x00\x00\x00ORTM" + bytes(64)).reason == "ort-format"


def test_deep_nesting_and_huge_models_are_refused_at_the_limits():
    model = external_data_in("Loop inside an If subgraph")
    assert refused(model.SerializeToString(), limits=Limits(max_depth=4)).reason == "too-large"
    assert refused(plain_model().SerializeToString(), limits=Limits(max_fields=5)).reason == "too-large"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x0a\xff", "runs past the end"),  # a length that is not all there
        (b"\x0a\x05abc", "runs past the end"),
        (b"\x00\x01", "field number 0"),
        (b"\x0b\x0c", "wire type 3"),  # a group: ONNX never writes one
        (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
        (b"\x3a\x02\x0a\x03", "runs past the end"),  # the graph's first node overruns the graph
    ],
)
def test_malformed_onnx_bytes_are_refused_by_what_is_wrong(data, words):
    error = refused(data)
    assert error.reason == "malformed"
    assert words in str(error)
    assert str(error).startswith("model 'model' is not a well-formed ONNX file (")


@given(st.data())
@FUZZ
def test_damaged_onnx_bytes_are_refused_or_pass_never_anything_else(data):
    base = bytearray(external_data_in(data.draw(st.sampled_from(list(PLACES)))).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(base) - 1))
        base[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    assert "\n" not in checked(bytes(base[:cut]), "onnxruntime")


def test_field_numbers_are_onnx_s():
    fields = {
        (onnx.ModelProto, "graph"): conf._MODEL_GRAPH,
        (onnx.ModelProto, "metadata_props"): conf._MODEL_METADATA,
        (onnx.ModelProto, "training_info"): conf._MODEL_TRAINING,
        (onnx.ModelProto, "functions"): conf._MODEL_FUNCTIONS,
        (onnx.GraphProto, "node"): conf._GRAPH_NODE,
        (onnx.GraphProto, "initializer"): conf._GRAPH_INITIALIZER,
        (onnx.GraphProto, "sparse_initializer"): conf._GRAPH_SPARSE,
        (onnx.NodeProto, "name"): conf._NODE_NAME,
        (onnx.NodeProto, "op_type"): conf._NODE_OP_TYPE,
        (onnx.NodeProto, "attribute"): conf._NODE_ATTRIBUTE,
        (onnx.NodeProto, "domain"): conf._NODE_DOMAIN,
        (onnx.AttributeProto, "name"): conf._ATTR_NAME,
        (onnx.AttributeProto, "i"): conf._ATTR_I,
        (onnx.AttributeProto, "ref_attr_name"): conf._ATTR_REF,
        (onnx.TensorProto, "name"): conf._TENSOR_NAME,
        (onnx.TensorProto, "external_data"): conf._TENSOR_EXTERNAL,
        (onnx.TensorProto, "data_location"): conf._TENSOR_LOCATION,
        (onnx.SparseTensorProto, "values"): conf._SPARSE_VALUES,
        (onnx.SparseTensorProto, "indices"): conf._SPARSE_INDICES,
        (onnx.FunctionProto, "name"): conf._FUNCTION_NAME,
        (onnx.FunctionProto, "node"): conf._FUNCTION_NODE,
        (onnx.FunctionProto, "domain"): conf._FUNCTION_DOMAIN,
        (onnx.FunctionProto, "attribute_proto"): conf._FUNCTION_ATTRIBUTE,
        (onnx.StringStringEntryProto, "key"): conf._ENTRY_KEY,
        (onnx.StringStringEntryProto, "value"): conf._ENTRY_VALUE,
    }
    for (message, name), number in fields.items():
        assert message.DESCRIPTOR.fields_by_name[name].number == number, (message.__name__, name)
    attribute = onnx.AttributeProto.DESCRIPTOR.fields_by_name
    assert {attribute[n].number for n in ("t", "tensors")} == conf._ATTR_TENSORS
    assert {attribute[n].number for n in ("g", "graphs")} == conf._ATTR_GRAPHS
    assert {attribute[n].number for n in ("sparse_tensor", "sparse_tensors")} == conf._ATTR_SPARSE
    training = onnx.TrainingInfoProto.DESCRIPTOR.fields_by_name
    assert {training[n].number for n in ("initialization", "algorithm")} == conf._TRAINING_GRAPHS
    assert onnx.TensorProto.EXTERNAL == 1


# -- TFLite ---------------------------------------------------------------------------------------------------------


def test_a_plain_tflite_model_passes_and_loads():
    check_confined(tflite_model(), "litert", source="model.tflite")


@pytest.mark.parametrize("code", ["NoSuchOp", "FlexAdd", "odml.update_kv_cache"])
def test_a_custom_operator_litert_does_not_register_is_refused(code):
    error = refused(tflite_model(custom=code), "litert")
    assert error.reason == "custom-op"
    assert f"custom operator '{code}'" in str(error)


def test_litert_s_own_custom_operators_pass_with_their_options_and_are_refused_without():
    check_confined(tflite_model(custom="TFLite_Detection_PostProcess", options=b""), "litert", source="m")
    error = refused(tflite_model(custom="TFLite_Detection_PostProcess"), "litert")
    assert "without its options" in str(error)  # LiteRT dereferences them at load: the process would crash


@pytest.mark.parametrize(
    ("kwargs", "reason", "words"),
    [
        ({"buffer_offset": 1 << 20}, "outside-file", "points buffer 1 at bytes 1048576..1048592, past the end"),
        ({"custom": "Mfcc", "large_options_offset": 1 << 20}, "outside-file", "the custom options of operator 0"),
        ({"external_group": "weights.bin"}, "external-buffer", "external buffer files"),
    ],
)
def test_data_outside_the_file_is_refused(kwargs, reason, words):
    error = refused(tflite_model(**kwargs), "litert")
    assert error.reason == reason
    assert words in str(error)


def test_a_buffer_inside_the_file_passes():
    check_confined(tflite_model(buffer_offset=8), "litert", source="model.tflite")


def test_what_is_not_a_tflite_model_is_refused():
    assert "no 'TFL3' identifier" in str(refused(plain_model().SerializeToString(), "litert"))
    truncated = tflite_model()[:40]
    assert refused(truncated, "litert").reason == "malformed"


@given(st.data())
@FUZZ
def test_damaged_tflite_bytes_are_refused_or_pass_never_anything_else(data):
    base = bytearray(tflite_model(custom=data.draw(st.sampled_from([None, "Mfcc"])), options=b"", buffer_offset=8))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(base) - 1))
        base[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    assert "\n" not in checked(bytes(base[:cut]), "litert")


# -- what must still pass -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*EXAMPLES, "blazeface"], ids=lambda p: getattr(p, "name", p))
def test_real_models_pass(path):
    path = cached(path) if isinstance(path, str) else path  # the fetched copy, from tools/fetch_models.py's cache
    check_confined(path.read_bytes(), "litert" if path.suffix == ".tflite" else "onnxruntime", source=path.name)


def test_an_unknown_backend_is_refused():
    assert refused(b"", "tensorrt").reason == "unknown-backend"


def test_the_check_needs_neither_onnx_nor_tflite():
    code = (
        "import sys\n"
        "from edgekit_runtime.confinement import check_confined\n"
        f"check_confined(open({str(EXAMPLES[1])!r}, 'rb').read(), 'onnxruntime', source='cnn.onnx')\n"
        f"check_confined(open({str(EXAMPLES[2])!r}, 'rb').read(), 'litert', source='face.tflite')\n"
        "print(sorted(m for m in ('onnx', 'tflite', 'flatbuffers', 'edgekit', 'google.protobuf') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_crafted_tensors_are_what_onnx_calls_external_data():
    from onnx.external_data_helper import uses_external_data

    assert uses_external_data(external("t"))
    assert external("t").data_type == TensorProto.UINT8


def test_serve_refuses_the_attack_in_one_line(secret_beside_cwd, tmp_path, keys, capsys):
    from edgekit_runtime.cli import main

    bundle = model_bundle(tmp_path / "leak-1.0.0.edgebundle", leaking_model().SerializeToString(), keys[0])
    code = main(["serve", str(bundle), "--trust", str(keys[1]), "--no-telemetry", "--port", "0"])
    assert code == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "error: model 'leak-1.0.0.edgebundle/model.onnx' keeps initializer 'secret' (in the main graph) in the "
        "external file 'secret.txt', outside the bundle: "
    )
    assert sorted(p.name for p in secret_beside_cwd.iterdir()) == [STOLEN_FILE]
