"""``edgekit_runtime.load``: verified, self-tested models with ``predict``, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgekit.bundle.pack import BundleOptions
from edgekit.bundle.source import PackData, pack_source
from edgekit_runtime import LoadOptions, load
from edgekit_runtime.errors import (
    BundleError,
    ConfigError,
    InvalidInputError,
    SelfTestError,
    SignatureError,
    UnsafeModelError,
)
from edgekit_runtime.golden import Golden
from edgekit_runtime.signing import load_public_key

from .tamper import re_pinned_with_other_golden_outputs
from .unsafe_models import SECRET, STOLEN_FILE, leaking_model, model_bundle, tflite_model

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
BLAZEFACE = ROOT / "examples" / "blazeface" / "face_detection_short_range.tflite"


@pytest.fixture(scope="module")
def model(signed_bundle, keys):
    return load(signed_bundle, LoadOptions(trusted_keys=[load_public_key(keys[1])]))


def test_load_verifies_and_self_tests_a_bundle(model, keys):
    assert (model.name, model.version) == ("digits-mlp", "1.0.0")
    assert model.signer == load_public_key(keys[1]).key_id
    assert model.self_test is not None
    assert model.self_test.passed
    assert model.backend.devices == ["CPUExecutionProvider"]
    assert [s.name for s in model.inputs] == ["input"]
    assert model.batched
    assert model.metadata()["sha256"] == model.sha256


def test_predict_matches_onnxruntime(model):
    x = np.load(DIGITS / "mlp_test.npz")["input"][:16]
    session = ort.InferenceSession(str(DIGITS / "mlp.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": x})
    out = model.predict({"input": x})
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_allclose(out["probabilities"], probabilities, rtol=1e-6, atol=1e-7)
    one = model.predict_one(x[3])
    assert one["label"] == label[3]
    assert one["probabilities"].shape == (10,)


def test_predict_converts_json_numbers_and_refuses_what_does_not_fit(model):
    rows = [[0] * 64, [1.5] * 64]
    assert model.predict({"input": rows})["probabilities"].shape == (2, 10)
    with pytest.raises(InvalidInputError, match=r"expects shape \[batch, 64\] \(float32\), got \[2, 63\]"):
        model.predict({"input": np.zeros((2, 63), np.float32)})
    with pytest.raises(InvalidInputError, match="add the batch dimension"):
        model.predict({"input": np.zeros(64, np.float32)})
    with pytest.raises(InvalidInputError, match=r"missing 'input'; unknown 'x'"):
        model.predict({"x": rows})
    with pytest.raises(InvalidInputError, match="expects float32 values, got strings"):
        model.predict({"input": [["a"] * 64]})
    with pytest.raises(InvalidInputError, match="not a rectangular array"):
        model.predict({"input": [[1.0] * 64, [1.0]]})
    with pytest.raises(InvalidInputError, match=r"has shape \[0, 64\], which holds no values"):
        model.predict({"input": np.zeros((0, 64), np.float32)})  # ONNX Runtime fails on it: the fuzz found a 500


def test_a_plain_onnx_file_loads_unverified():
    plain = load(DIGITS / "cnn.onnx")
    assert (plain.name, plain.version, plain.self_test) == ("cnn", "unversioned", None)
    assert plain.predict_one(np.zeros((1, 8, 8), np.float32))["logits"].shape == (10,)


def test_a_plain_onnx_file_is_refused_where_signatures_are_required(keys):
    with pytest.raises(SignatureError, match="requires signed bundles"):
        load(DIGITS / "cnn.onnx", LoadOptions(trusted_keys=[load_public_key(keys[1])]))


def test_a_bundle_whose_model_gives_other_outputs_fails_its_self_test(signed_bundle, tmp_path):
    broken = re_pinned_with_other_golden_outputs(signed_bundle, tmp_path / "broken.edgebundle")
    with pytest.raises(SelfTestError, match=r"fails its self-test on this device \(probabilities: max abs error"):
        load(broken)
    assert load(broken, LoadOptions(self_test=False)).self_test is None


def test_a_tflite_bundle_runs_in_litert(tmp_path):
    bundle = pack_source(str(BLAZEFACE), tmp_path, BundleOptions(name="blazeface"), PackData()).path
    face = load(bundle)
    assert face.backend.name == "litert"
    assert face.self_test is not None
    assert face.self_test.passed
    out = face.predict({"input": np.zeros((1, 128, 128, 3), np.float32)})
    assert out["regressors"].shape == (1, 896, 16)


def test_what_is_not_a_model_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match=r"neither an \.edgebundle bundle nor an \.onnx model"):
        load(tmp_path / "notes.txt")
    with pytest.raises(BundleError, match="does not exist"):
        load(tmp_path / "missing.onnx")


def test_threads_and_providers_are_checked(signed_bundle):
    from edgekit_runtime.backends import BackendSettings

    with pytest.raises(ConfigError, match="threads 0"):
        load(signed_bundle, LoadOptions(backend=BackendSettings(threads=0)))
    with pytest.raises(ConfigError, match="CUDAExecutionProvider is not in this onnxruntime build"):
        load(signed_bundle, LoadOptions(backend=BackendSettings(providers=("CUDAExecutionProvider",))))


def test_onnxruntime_usage_telemetry_is_off(tmp_path):
    import subprocess
    import sys

    code = f"import edgekit_runtime; edgekit_runtime.load({str(DIGITS / 'cnn.onnx')!r})"
    subprocess.run([sys.executable, "-c", code], check=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert (
        written == []
    )  # ONNX Runtime alone writes .cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}


def test_booleans_and_out_of_range_floats_are_refused(model):
    with pytest.raises(InvalidInputError, match="expects float32 values, got booleans"):
        model.predict({"input": [[True] * 64]})
    with pytest.raises(InvalidInputError, match="outside float32's range"):
        model.predict({"input": [[1e300] * 64]})


# -- a model reaches nothing outside its bundle (edgekit_runtime.confinement) ----------------------------------------


def test_a_plain_onnx_file_with_external_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / STOLEN_FILE).write_bytes(SECRET)
    onnx.save_model(leaking_model(), "leak.onnx")
    with pytest.raises(UnsafeModelError, match=r"^model 'leak\.onnx' keeps initializer 'secret' \(in the main graph\)"):
        load("leak.onnx")


def _abs_golden() -> Golden:
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    return Golden({"x": x}, {"y": np.abs(x)}, {"y": 1e-6}, {"y": 1e-4})


def test_a_tflite_bundle_of_builtin_ops_loads(tmp_path, keys):
    bundle = model_bundle(
        tmp_path / "abs-1.0.0.edgebundle", tflite_model(), keys[0], golden=_abs_golden(), backend="litert"
    )
    model = load(bundle, LoadOptions(trusted_keys=[load_public_key(keys[1])]))
    assert model.self_test is not None
    assert model.self_test.passed


def test_a_tflite_bundle_with_a_custom_op_is_refused_before_litert_sees_it(tmp_path, keys, monkeypatch):
    from edgekit_runtime.backends import litert

    model = tflite_model(custom="NoSuchOp")
    bundle = model_bundle(tmp_path / "custom-1.0.0.edgebundle", model, keys[0], golden=_abs_golden(), backend="litert")

    def no_interpreter(**_):
        pytest.fail("LiteRT was given an unchecked model")

    monkeypatch.setattr(litert, "_interpreter_class", lambda: no_interpreter)
    with pytest.raises(UnsafeModelError) as caught:
        load(bundle, LoadOptions(trusted_keys=[load_public_key(keys[1])]))
    assert str(caught.value).startswith(
        "model 'custom-1.0.0.edgebundle/model.tflite' uses custom operator 'NoSuchOp', which LiteRT does not have "
        "built in"
    )
    assert caught.value.reason == "custom-op"


def test_a_model_whose_bytes_cannot_be_read_is_refused_not_handed_to_the_engine(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f not a model")
    with pytest.raises(UnsafeModelError, match=r"^model 'junk\.onnx' is not a well-formed ONNX file"):
        load(tmp_path / "junk.onnx")
