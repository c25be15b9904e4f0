"""``edgekit keygen|sign|verify|convert`` and ``edgekit bundle pack|inspect`` from the command line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from tests.runtime.unsafe_models import (
    SECRET,
    STOLEN_FILE,
    leak_golden,
    leaking_model,
    manifest_doc,
    model_bundle,
    plain_model,
    signed,
    tflite_model,
)

runner = CliRunner()
FAST = ["--max-eval-samples", "64", "--timing", "0.2"]
BLAZEFACE = Path(__file__).resolve().parents[3] / "examples" / "blazeface" / "face_detection_short_range.tflite"


def ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(args, code, *words):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("keys") / "fleet"
    out = ok(["keygen", "-o", prefix])
    assert "key id" in out
    return prefix.with_suffix(".key"), prefix.with_suffix(".pub")


def test_pack_sign_verify_inspect(digits, tmp_path, keypair):
    key, pub = keypair
    out = ok(
        ["bundle", "pack", digits / "mlp.onnx", "-o", tmp_path, "--name", "digits", "--calib", digits / "mlp_calib.npz"]
    )
    bundle = tmp_path / "digits-1.0.0.edgebundle"
    assert out.startswith(f"wrote {bundle}")
    assert "unsigned" in out
    fails(["verify", bundle, "--trust", pub], 1, "unsigned", "edgekit sign")
    assert "OK" in ok(["verify", bundle, "--allow-unsigned"])
    assert f"signed {bundle}" in ok(["sign", bundle, "--key", key])
    verified = ok(["verify", bundle, "--trust", pub])
    assert "signed by key" in verified
    assert "self-test passed (ONNX Runtime)" in verified
    shown = ok(["bundle", "inspect", bundle, "--trust", pub])
    assert "digits 1.0.0" in shown
    assert "golden.npz" in shown
    assert "[batch, 64]" in shown
    manifest = json.loads(ok(["bundle", "inspect", bundle, "--json"]))
    assert manifest["name"] == "digits"


def test_verify_with_the_wrong_key_or_a_tampered_bundle(digits, tmp_path, keypair):
    key, _ = keypair
    ok(["bundle", "pack", digits / "mlp.onnx", "-o", tmp_path, "--sign-key", key])
    bundle = tmp_path / "mlp-1.0.0.edgebundle"
    other = tmp_path / "other"
    ok(["keygen", "-o", other])
    fails(["verify", bundle, "--trust", other.with_suffix(".pub")], 1, "not trusted here")
    fails(["verify", bundle], 2, "no --trust key given")
    fails(["verify", bundle, "--trust", key], 2, "is a private key")
    with zipfile.ZipFile(bundle) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    golden = bytearray(members["golden.npz"])
    golden[len(golden) // 2] ^= 1
    members["golden.npz"] = bytes(golden)
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    fails(["verify", bundle, "--allow-unsigned"], 1, "member 'golden.npz' does not match its SHA-256")


def test_a_tflite_model_is_packed_as_is_and_self_tests_in_litert(tmp_path, keypair):
    key, pub = keypair
    ok(["bundle", "pack", BLAZEFACE, "--name", "blazeface", "-o", tmp_path, "--sign-key", key])
    bundle = tmp_path / "blazeface-1.0.0.edgebundle"
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read("model.tflite") == BLAZEFACE.read_bytes()
    assert "self-test passed (LiteRT)" in ok(["verify", bundle, "--trust", pub])
    manifest = json.loads(ok(["bundle", "inspect", bundle, "--json"]))
    assert manifest["models"][0]["backend"] == "litert"
    assert manifest["inputs"][0]["shape"] == [1, 128, 128, 3]


def test_compress_on_a_tflite_model_packs_it(tmp_path):
    out = ok(["compress", BLAZEFACE, "-o", tmp_path])
    assert "packed as is" in out
    assert (tmp_path / "face_detection_short_range-1.0.0.edgebundle").is_file()


def test_compress_writes_a_signed_bundle_or_none(digits, tmp_path, keypair):
    key, pub = keypair
    out = ok(["compress", digits / "mlp.onnx", "-o", tmp_path / "a", "--mode", "fp16", "--sign-key", key, *FAST])
    assert f"bundle: {tmp_path / 'a' / 'mlp-1.0.0.edgebundle'}" in out
    ok(["verify", tmp_path / "a" / "mlp-1.0.0.edgebundle", "--trust", pub])
    ok(["compress", digits / "mlp.onnx", "-o", tmp_path / "b", "--mode", "fp16", "--no-bundle", *FAST])
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.onnx", "report.json"]


def test_bad_bundle_options_are_refused_before_any_work(digits, tmp_path):
    mlp = digits / "mlp.onnx"
    fails(["compress", mlp, "-o", tmp_path / "o", "--name", "Bad Name"], 2, "bundle name 'Bad Name'")
    fails(["compress", mlp, "-o", tmp_path / "o", "--model-version", "1/2"], 2, "bundle version '1/2'")
    fails(["compress", mlp, "-o", tmp_path / "o", "--sign-key", tmp_path / "none.key"], 2, "does not exist")
    fails(["compress", mlp, "-o", tmp_path / "o", "--labels", tmp_path / "none.txt"], 2, "--labels file")
    assert not (tmp_path / "o").exists()
    fails(["bundle", "pack", mlp, "--created", "yesterday"], 2, "--created 'yesterday'")
    fails(["bundle", "inspect", tmp_path / "none.edgebundle"], 1, "does not exist")
    fails(["sign", tmp_path / "none.edgebundle", "--key", tmp_path / "none.key"], 2, "signing key")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    fails(["bundle", "pack", mlp, "-o", tmp_path, "--labels", tmp_path / "labels.txt"], 2, "2 labels given")


def test_keygen_will_not_overwrite_a_key(tmp_path):
    ok(["keygen", "-o", tmp_path / "k"])
    fails(["keygen", "-o", tmp_path / "k"], 2, "exists", "--force")
    ok(["keygen", "-o", tmp_path / "k", "--force"])


# -- what a model may reference, and signed manifests of the wrong shape ---------------------------------------------


def test_verify_refuses_a_signed_model_that_reads_a_file_outside_its_bundle(tmp_path, keypair, monkeypatch):
    key, pub = keypair
    monkeypatch.chdir(tmp_path)
    (tmp_path / STOLEN_FILE).write_bytes(SECRET)  # ONNX Runtime would read it from here, and the self-test passes
    bundle = model_bundle(tmp_path / "leak-1.0.0.edgebundle", leaking_model().SerializeToString(), key)
    line = fails(["verify", bundle, "--trust", pub], 3, "external file 'secret.txt'", "rebuild the bundle")
    assert line == (
        "error: model 'leak-1.0.0.edgebundle/model.onnx' keeps initializer 'secret' (in the main graph) in the "
        "external file 'secret.txt', outside the bundle: save the model as one file (onnx.save_model(model, path, "
        "save_as_external_data=False)) and rebuild the bundle"
    )
    fails(["verify", bundle, "--trust", pub, "--no-self-test"], 3, "external file 'secret.txt'")


def test_verify_refuses_a_custom_op_in_a_tflite_bundle(tmp_path, keypair):
    key, pub = keypair
    bundle = model_bundle(tmp_path / "op-1.0.0.edgebundle", tflite_model(custom="FlexAdd"), key, backend="litert")
    fails(["verify", bundle, "--trust", pub], 3, "custom operator 'FlexAdd'", "Flex delegate")


def _signed_with(manifest_change, tmp_path, key):
    model = plain_model().SerializeToString()
    golden = leak_golden().to_bytes()
    doc = manifest_doc(model, golden)
    manifest_change(doc)
    return signed(tmp_path / "m-1.0.0.edgebundle", {"model.onnx": model, "golden.npz": golden}, doc, key)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda doc: doc.update(models=[]), "manifest.json field 'models' is empty"),
        (lambda doc: doc.update(models="model.onnx"), "field 'models' is the string \"model.onnx\", not a list"),
        (lambda doc: doc["models"].__setitem__(0, 3), "field 'models[0]' is 3, not an object"),
        (lambda doc: doc["models"][0].pop("backend"), "field 'models[0].backend' is null"),
        (lambda doc: doc["inputs"][0].update(shape={"batch": 1}), "field 'inputs[0].shape' is an object"),
        (lambda doc: doc.update(labels=[None]), "field 'labels' is a list, not a list of strings"),
    ],
)
def test_verify_and_inspect_say_what_is_wrong_with_a_signed_manifest_in_one_line(tmp_path, keypair, change, words):
    key, pub = keypair
    bundle = _signed_with(change, tmp_path, key)
    fails(["verify", bundle, "--trust", pub], 1, words, "rebuild the bundle with edgekit bundle pack")
    fails(["bundle", "inspect", bundle, "--trust", pub], 1, words)


def test_inspect_shows_what_it_can_of_fields_the_runtime_does_not_read(tmp_path, keypair):
    key, pub = keypair
    odd = {"created": 5, "source": ["x"], "target": None, "compression": {"size_ratio": "big", "chosen": "fp16"}}
    bundle = _signed_with(lambda doc: doc.update(odd), tmp_path, key)
    shown = ok(["bundle", "inspect", bundle, "--trust", pub])
    assert "compression: fp16" in shown
    assert "leak 1.0.0" in shown
