"""Writing bundles: deterministic bytes, the manifest's fields, golden tolerances, options that cannot work."""

from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timezone

import numpy as np
import pytest

from edgekit.bundle.golden import make_golden
from edgekit.bundle.manifest import check_name, check_version, compression_summary, name_from
from edgekit.bundle.pack import BundleOptions, created_time
from edgekit.bundle.sign import sign_bundle
from edgekit.bundle.signing import generate_keypair
from edgekit.bundle.source import PackData, pack_source
from edgekit.compress import CompressOptions, compress
from edgekit.errors import BundleError, ConfigError
from edgekit.measure.latency import LatencyBudget
from edgekit_runtime.bundle import open_bundle
from edgekit_runtime.bundle_format import GOLDEN, MANIFEST, REPORT
from edgekit_runtime.golden import Golden
from edgekit_runtime.signing import load_public_key

WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def pack(digits, out, **options):
    data = PackData(calib=digits / "mlp_calib.npz", eval=digits / "mlp_test.npz")
    return pack_source(str(digits / "mlp.onnx"), out, BundleOptions(**options), data)


def test_the_same_inputs_give_the_same_bytes(digits, tmp_path):
    first = pack(digits, tmp_path / "a").path
    second = pack(digits, tmp_path / "b").path
    assert first.name == "mlp-1.0.0.edgebundle"
    assert first.read_bytes() == second.read_bytes()


def test_signed_bundles_are_deterministic_too(digits, tmp_path):
    key, _ = generate_keypair(tmp_path / "k")
    first = pack(digits, tmp_path / "a", signing_key=key).path
    second = pack(digits, tmp_path / "b", signing_key=key).path
    assert first.read_bytes() == second.read_bytes()  # Ed25519 signatures are deterministic


def test_created_comes_from_the_option_then_source_date_epoch_then_the_model(monkeypatch):
    fallback = datetime(2020, 1, 1, tzinfo=timezone.utc)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert created_time(BundleOptions(), fallback) == fallback
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert created_time(BundleOptions(), fallback) == datetime.fromtimestamp(1700000000, tz=timezone.utc)
    assert created_time(BundleOptions(created=WHEN), fallback) == WHEN
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        created_time(BundleOptions(), fallback)


def test_the_manifest_says_what_the_model_is(digits, tmp_path):
    bundle = pack(digits, tmp_path, name="digits", version="2.1.0", created=WHEN, labels=tuple("0123456789"))
    m = bundle.manifest
    assert (m["name"], m["version"], m["created"]) == ("digits", "2.1.0", "2026-11-24T12:00:00Z")
    assert m["models"][0]["backend"] == "onnxruntime"
    assert m["inputs"][0]["dtype"] == "float32"
    assert m["inputs"][0]["shape"][1:] == [64]
    assert m["labels"] == list("0123456789")
    assert m["source"] == {"kind": "onnx", "file": "mlp.onnx"}
    assert {f["path"] for f in m["files"]} == {"model.onnx", GOLDEN, "reference.json"}
    with zipfile.ZipFile(bundle.path) as archive:
        assert archive.namelist()[0] == MANIFEST
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_labels_must_fit_the_outputs(digits, tmp_path):
    with pytest.raises(ConfigError, match="3 labels given but the model's outputs have 10 classes"):
        pack(digits, tmp_path, labels=("a", "b", "c"))


def test_golden_inputs_are_real_data_and_pass_their_own_test(digits, tmp_path):
    bundle = pack(digits, tmp_path)
    golden = Golden.from_bytes(bundle.read(GOLDEN))
    test = np.load(digits / "mlp_test.npz")
    np.testing.assert_array_equal(golden.inputs["input"], test["input"][:8])
    assert golden.atol["probabilities"] > 0
    assert "label" not in golden.atol  # integer labels must match exactly


def test_a_compressed_model_gets_tolerance_for_its_compression_error():
    inputs = {"x": np.zeros((2, 2), np.float32)}
    exact = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    golden = make_golden(inputs, lambda _: {"y": exact}, original=lambda _: {"y": exact + 0.1})
    base = make_golden(inputs, lambda _: {"y": exact})
    assert base.atol["y"] == pytest.approx(1e-4 * 3 + 1e-6)
    assert golden.atol["y"] == pytest.approx(base.atol["y"] + 0.05, rel=1e-4)


def test_compress_writes_a_bundle_with_its_report(digits, tmp_path):
    options = CompressOptions(
        modes=("fp16",),
        eval=digits / "mlp_test.npz",
        latency_budget=LatencyBudget(seconds=0.1, warmup=2, rounds=1),
        bundle=BundleOptions(name="digits-mlp"),
    )
    out = tmp_path / "out"
    report = compress(digits / "mlp.onnx", out, options)
    assert report.files == ["model.onnx", "digits-mlp-1.0.0.edgebundle", "report.json"]
    bundle = open_bundle(out / "digits-mlp-1.0.0.edgebundle")
    inner = json.loads(bundle.read(REPORT))
    assert inner == json.loads((out / "report.json").read_text())
    assert bundle.read("model.onnx") == (out / "model.onnx").read_bytes()
    assert bundle.manifest["compression"]["chosen"] == "fp16"
    assert 0.4 < bundle.manifest["compression"]["size_ratio"] < 0.75
    # packing the compress folder again gives the same bytes each time
    again = [pack_source(str(out), tmp_path / d, BundleOptions(created=WHEN), PackData()).path for d in "ab"]
    assert again[0].read_bytes() == again[1].read_bytes()


def test_sign_adds_a_signature_and_refuses_a_tampered_bundle(digits, tmp_path):
    key, pub = generate_keypair(tmp_path / "k")
    path = pack(digits, tmp_path).path
    signed = sign_bundle(path, key, tmp_path / "signed.edgebundle")
    assert signed.signer is not None
    open_bundle(signed.path, trusted_keys=[load_public_key(pub)])
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.onnx")
    raw[info.header_offset + 30 + len("model.onnx") + info.compress_size // 2] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"member 'model\.onnx'"):
        sign_bundle(path, key)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_pack_compress_and_sign_write_bundles_with_one_mode(digits, tmp_path, mask, expected):
    """A bundle is published, not secret: 0666 less the umask, whichever command wrote it; the key stays 0600."""
    old = os.umask(mask)
    try:
        key, _ = generate_keypair(tmp_path / "k")
        packed = pack(digits, tmp_path / "packed").path
        fast = LatencyBudget(seconds=0.05, warmup=1, rounds=1)
        options = CompressOptions(modes=("fp16",), latency_budget=fast, bundle=BundleOptions())
        compress(digits / "mlp.onnx", tmp_path / "compressed", options)
        signed = sign_bundle(packed, key, tmp_path / "signed.edgebundle").path
    finally:
        os.umask(old)
    compressed = tmp_path / "compressed" / "mlp-1.0.0.edgebundle"
    modes = {p: p.stat().st_mode & 0o777 for p in (packed, compressed, signed)}
    assert modes == dict.fromkeys(modes, expected)
    assert key.stat().st_mode & 0o777 == 0o600


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    private, public = generate_keypair(tmp_path / "k")
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(ConfigError, match="exists"):
        generate_keypair(tmp_path / "k")


@pytest.mark.parametrize("name", ["Digits", "-x", "a b", "x" * 65, ""])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigError, match="is not allowed"):
        check_name(name)


@pytest.mark.parametrize("version", ["", "1 0", "../1", "v/1"])
def test_bad_versions_are_refused(version):
    with pytest.raises(ConfigError, match="is not allowed"):
        check_version(version)


@pytest.mark.parametrize(
    ("source", "name"),
    [("models/Digits CNN.onnx", "digits-cnn"), ("tools/digits_cnn.py:build", "digits_cnn"), ("mlruns/m1/", "m1")],
)
def test_names_come_from_the_source(source, name):
    assert name_from(source) == name


def test_compression_summary_reads_a_report():
    report = {
        "chosen": "int8",
        "original": {"size": {"raw_bytes": 1000}, "latency": [{"batch": 1, "p50_ms": 2.0}], "accuracy": 0.9},
        "variants": [
            {"name": "int8", "size": {"raw_bytes": 250}, "latency": [{"batch": 1, "p50_ms": 1.0}], "accuracy": 0.89}
        ],
    }
    summary = compression_summary(report)
    assert summary["size_ratio"] == 0.25
    assert summary["speedup_by_batch"] == {"1": 2.0}
    assert summary["accuracy"] == {"original": 0.9, "chosen": 0.89}


def test_a_model_the_device_would_refuse_is_never_packed(digits, tmp_path):
    """An ONNX model with session settings in its metadata loads here, but no device takes it: pack refuses."""
    import onnx

    model = onnx.load(digits / "mlp.onnx")
    onnx.helper.set_model_props(model, {"ort_config": '{"session_options": {"enable_profiling": true}}'})
    onnx.save(model, tmp_path / "mlp.onnx")
    with pytest.raises(BundleError, match="'ort_config' metadata"):
        pack_source(
            str(tmp_path / "mlp.onnx"),
            tmp_path / "out",
            BundleOptions(name="m"),
            PackData(calib=digits / "mlp_calib.npz"),
        )
    assert not list((tmp_path / "out").glob("*.edgebundle"))
