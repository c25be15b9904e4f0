"""The device-side verifier: a good bundle opens; each kind of damage or tampering is refused by name."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgekit.bundle.archive import archive_bytes
from edgekit.bundle.signing import generate_keypair
from edgekit_runtime import LoadOptions, load
from edgekit_runtime.bundle import Limits, open_bundle
from edgekit_runtime.bundle_format import GOLDEN, MANIFEST, REFERENCE, SIGNATURE
from edgekit_runtime.errors import BundleError, SignatureError
from edgekit_runtime.signing import load_public_key

from .tamper import flip, members_of, write_zip
from .unsafe_models import signed

MEMBERS = ["model.onnx", GOLDEN, REFERENCE]


@pytest.fixture(scope="module")
def trusted(keys):
    return [load_public_key(keys[1])]


def test_a_good_signed_bundle_opens_and_reads_back(signed_bundle, trusted):
    bundle = open_bundle(signed_bundle, trusted_keys=trusted)
    assert bundle.signer is not None
    assert bundle.signer.key_id == trusted[0].key_id
    assert bundle.name == "digits-mlp"
    assert bundle.model["backend"] == "onnxruntime"
    model = bundle.read("model.onnx")
    assert hashlib.sha256(model).hexdigest() == bundle.model["sha256"]
    assert set(bundle.members) == {"model.onnx", GOLDEN, REFERENCE}


def test_extract_writes_the_checked_member(signed_bundle, trusted, tmp_path):
    bundle = open_bundle(signed_bundle, trusted_keys=trusted)
    dest = bundle.extract("model.onnx", tmp_path / "deep" / "model.onnx")
    assert dest.read_bytes() == bundle.read("model.onnx")
    assert [p.name for p in dest.parent.iterdir()] == ["model.onnx"]  # no temporary file left


def test_without_trusted_keys_a_signed_bundle_opens_unverified(signed_bundle):
    bundle = open_bundle(signed_bundle)
    assert bundle.signer is None
    assert bundle.signature_key_id is not None


@pytest.mark.parametrize("member", MEMBERS)
def test_a_flipped_byte_in_any_member_is_refused_by_name(signed_bundle, trusted, tmp_path, member):
    members = members_of(signed_bundle)
    members[member] = flip(members[member])
    tampered = write_zip(tmp_path / "t.edgebundle", members)
    with pytest.raises(BundleError, match=f"member '{member}' does not match its SHA-256"):
        open_bundle(tampered, trusted_keys=trusted)


@pytest.mark.parametrize("member", MEMBERS)
def test_a_flipped_byte_in_the_archive_file_is_refused_by_name(signed_bundle, tmp_path, member):
    raw = signed_bundle.read_bytes()
    with zipfile.ZipFile(signed_bundle) as archive:
        info = archive.getinfo(member)
    header = 30 + len(info.filename.encode()) + len(info.extra)
    damaged = tmp_path / "d.edgebundle"
    damaged.write_bytes(flip(raw, info.header_offset + header + info.compress_size // 2))
    with pytest.raises(BundleError, match=f"member '{member}'"):
        open_bundle(damaged)


def test_a_missing_member_is_refused(signed_bundle, trusted, tmp_path):
    members = members_of(signed_bundle)
    del members[GOLDEN]
    with pytest.raises(BundleError, match=r"'golden\.npz' is listed in the manifest but missing"):
        open_bundle(write_zip(tmp_path / "m.edgebundle", members), trusted_keys=trusted)


def test_a_member_the_manifest_does_not_list_is_refused(signed_bundle, tmp_path):
    members = members_of(signed_bundle) | {"extra.py": b"print('hi')"}
    with pytest.raises(BundleError, match=r"'extra\.py' is not listed in the manifest"):
        open_bundle(write_zip(tmp_path / "x.edgebundle", members))


def test_a_manifest_edited_after_signing_is_refused(signed_bundle, trusted, tmp_path):
    members = members_of(signed_bundle)
    manifest = json.loads(members[MANIFEST])
    manifest["version"] = "9.9.9"
    members[MANIFEST] = json.dumps(manifest).encode()
    with pytest.raises(SignatureError, match=r"does not match manifest\.json"):
        open_bundle(write_zip(tmp_path / "e.edgebundle", members), trusted_keys=trusted)


def test_a_manifest_that_re_pins_a_swapped_model_still_fails_the_signature(signed_bundle, trusted, tmp_path):
    members = members_of(signed_bundle)
    members["model.onnx"] = flip(members["model.onnx"])
    manifest = json.loads(members[MANIFEST])
    for entry in manifest["files"] + manifest["models"]:
        if entry["path"] == "model.onnx":
            entry["sha256"] = hashlib.sha256(members["model.onnx"]).hexdigest()
    members[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    swapped = write_zip(tmp_path / "s.edgebundle", members)
    open_bundle(swapped)  # hashes agree: without keys nothing can tell
    with pytest.raises(SignatureError, match="does not match"):
        open_bundle(swapped, trusted_keys=trusted)


def test_a_bundle_signed_by_another_key_is_refused(signed_bundle, tmp_path):
    _, other = generate_keypair(tmp_path / "other")
    with pytest.raises(SignatureError, match="not trusted here"):
        open_bundle(signed_bundle, trusted_keys=[load_public_key(other)])


def test_an_unsigned_bundle_is_refused_where_a_signature_is_required(signed_bundle, trusted, tmp_path):
    members = members_of(signed_bundle)
    del members[SIGNATURE]
    unsigned = write_zip(tmp_path / "u.edgebundle", members)
    assert open_bundle(unsigned).signature_key_id is None
    with pytest.raises(SignatureError, match="unsigned"):
        open_bundle(unsigned, trusted_keys=trusted)
    with pytest.raises(SignatureError, match="unsigned"):
        open_bundle(unsigned, require_signature=True)


def test_a_malformed_signature_is_refused(signed_bundle, trusted, tmp_path):
    members = members_of(signed_bundle) | {SIGNATURE: b"{not json"}
    with pytest.raises(SignatureError, match=r"manifest\.sig is malformed"):
        open_bundle(write_zip(tmp_path / "b.edgebundle", members), trusted_keys=trusted)


@pytest.mark.parametrize("name", ["../evil.onnx", "/etc/passwd", "sub/../../x", "a\\b", "C:evil", "dir/model.onnx"])
def test_a_member_path_that_could_escape_is_refused(signed_bundle, tmp_path, name):
    members = members_of(signed_bundle) | {name: b"x"}
    with pytest.raises(BundleError, match="unsafe path"):
        open_bundle(write_zip(tmp_path / "p.edgebundle", members))


def test_a_symlink_member_is_refused(signed_bundle, tmp_path):
    path = shutil.copy(signed_bundle, tmp_path / "l.edgebundle")
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="folder or link"):
        open_bundle(path)


def test_a_repeated_member_is_refused(signed_bundle, tmp_path):
    path = shutil.copy(signed_bundle, tmp_path / "r.edgebundle")
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr(GOLDEN, b"other")
    with pytest.raises(BundleError, match="twice"):
        open_bundle(path)


def test_an_oversized_member_is_refused_before_it_is_read(signed_bundle):
    with pytest.raises(BundleError, match="over the 1000-byte limit"):
        open_bundle(signed_bundle, limits=Limits(max_member_bytes=1000))


def test_a_zip_bomb_is_refused(signed_bundle, tmp_path):
    members = members_of(signed_bundle)
    bomb = bytes(50 << 20)  # 50 MiB of zeros deflates about 1000:1
    manifest = json.loads(members[MANIFEST])
    manifest["files"].append({"path": "bomb.bin", "sha256": hashlib.sha256(bomb).hexdigest(), "size": len(bomb)})
    members[MANIFEST] = json.dumps(manifest).encode()
    del members[SIGNATURE]
    with pytest.raises(BundleError, match="ZIP bomb"):
        open_bundle(write_zip(tmp_path / "z.edgebundle", members | {"bomb.bin": bomb}))


def test_too_many_members_are_refused(signed_bundle, tmp_path):
    members = members_of(signed_bundle) | {f"f{i}": b"" for i in range(70)}
    with pytest.raises(BundleError, match="more than 64"):
        open_bundle(write_zip(tmp_path / "n.edgebundle", members))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip at all", "not a ZIP archive"),
        (archive_bytes({"model.onnx": b"x"}), r"no manifest\.json"),
        (archive_bytes({MANIFEST: b"{"}), "not valid JSON"),
        (archive_bytes({MANIFEST: b'{"format": "other"}'}), "not an edgekit manifest"),
        (archive_bytes({MANIFEST: b'{"format": "edgekit-bundle", "format_version": 99}'}), "format version 99"),
    ],
)
def test_what_is_not_a_bundle_says_so(tmp_path, content, message):
    path = tmp_path / "x.edgebundle"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        open_bundle(path)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        open_bundle(tmp_path / "nope.edgebundle")


def test_the_runtime_verifier_imports_nothing_from_the_host(signed_bundle):
    import subprocess
    import sys

    code = (
        "import sys; from edgekit_runtime.bundle import open_bundle; "
        f"open_bundle({str(signed_bundle)!r}); "
        "print(sorted(m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- signed but malformed manifests: one line naming the field, never a traceback ------------------------------------


def _resigned(signed_bundle, path, key, change):
    """The bundle with its manifest changed by ``change(doc)`` and signed again: the signature holds."""
    members = members_of(signed_bundle)
    doc = json.loads(members.pop(MANIFEST))
    del members[SIGNATURE]
    change(doc)
    return signed(path, members, doc, key)


def _set(path, value):
    def change(doc):
        *parents, last = path
        for key in parents:
            doc = doc[key]
        if value is _DELETE:
            del doc[last]
        else:
            doc[last] = value

    return change


_DELETE = object()
OTHER_SHA = "0" * 64


@pytest.mark.parametrize(
    "case",
    [
        (["models"], [], "field 'models' is empty, so the bundle has no model"),
        (["models"], {"path": "model.onnx"}, "field 'models' is an object, not a list"),
        (["models"], None, "field 'models' is null, not a list"),
        (["models", 0], "model.onnx", "field 'models[0]' is the string \"model.onnx\", not an object"),
        (["models", 0, "path"], 7, "field 'models[0].path' is 7, not a member name"),
        (["models", 0, "path"], _DELETE, "field 'models[0].path' is null, not a member name"),
        (["models", 0, "backend"], "tensorrt", "'models[0].backend' is the string \"tensorrt\", not one of"),
        (["models", 0, "backend"], ["onnxruntime"], "'models[0].backend' is a list, not one of onnxruntime, litert"),
        (["models", 0, "sha256"], OTHER_SHA, "'models[0]' gives another SHA-256 or size for 'model.onnx'"),
        (["models", 0, "size"], True, "'models[0].size' is true, not a size in bytes"),
        (["files"], "golden.npz", "field 'files' is the string \"golden.npz\", not a list"),
        (["files", 0], [], "field 'files[0]' is a list, not an object"),
        (["files", 0, "size"], "1431", "'files[0].size' is the string \"1431\", not a size in bytes"),
        (["files", 0, "sha256"], "ABC", "'files[0].sha256' is the string \"ABC\", not a SHA-256 in hex"),
        (["files", 0, "path"], "golden\nnpz", "'files[0].path' is the string \"golden\\nnpz\", not a member name"),
        (["name"], 5, "field 'name' is 5, not a name of 1 to 128 printable characters"),
        (["name"], "", "field 'name' is the string \"\", not a name"),
        (["version"], {"major": 1}, "field 'version' is an object, not a name"),
        (["inputs"], {"input": [1, 64]}, "field 'inputs' is an object, not a list"),
        (["inputs", 0], "input", "field 'inputs[0]' is the string \"input\", not an object"),
        (["inputs", 0, "name"], None, "field 'inputs[0].name' is null, not a string"),
        (["inputs", 0, "shape"], "batch,64", "'inputs[0].shape' is the string \"batch,64\", not a list of integers"),
        (["inputs", 0, "shape"], [1.5, 64], "'inputs[0].shape' is a list, not a list of integers, names and nulls"),
        (["outputs", 1, "dtype"], 32, "field 'outputs[1].dtype' is 32, not a string"),
        (["labels"], "0,1,2", "field 'labels' is the string \"0,1,2\", not a list of strings"),
        (["labels"], [0, 1], "field 'labels' is a list, not a list of strings"),
        (["preprocessing"], [0.5], "field 'preprocessing' is a list, not an object or null"),
    ],
)
def test_a_signed_manifest_of_the_wrong_shape_is_refused_by_field(signed_bundle, keys, trusted, tmp_path, case):
    path, value, words = case
    bundle = _resigned(signed_bundle, tmp_path / "m.edgebundle", keys[0], _set(path, value))
    with pytest.raises(BundleError) as caught:
        open_bundle(bundle, trusted_keys=trusted)
    message = str(caught.value)
    assert words in message
    assert message.startswith("manifest.json field '")
    assert message.endswith(": rebuild the bundle with edgekit bundle pack")
    assert "\n" not in message


def test_fields_the_runtime_does_not_read_may_be_anything(signed_bundle, keys, trusted, tmp_path):
    def change(doc):
        doc.update(created=None, source=[], target="x", compression={"size_ratio": "big"}, extra={"new": 1})
        del doc["labels"], doc["preprocessing"], doc["inputs"]

    bundle = open_bundle(_resigned(signed_bundle, tmp_path / "o.edgebundle", keys[0], change), trusted_keys=trusted)
    assert bundle.model["path"] == "model.onnx"


def test_serve_says_what_is_wrong_with_a_signed_manifest_in_one_line(signed_bundle, keys, tmp_path, capsys):
    from edgekit_runtime.cli import main

    bundle = _resigned(signed_bundle, tmp_path / "empty-1.0.0.edgebundle", keys[0], _set(["models"], []))
    code = main(["serve", str(bundle), "--trust", str(keys[1]), "--no-telemetry", "--port", "0"])
    assert code == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "error: manifest.json field 'models' is empty, so the bundle has no model: rebuild the bundle with "
        "edgekit bundle pack"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc, prefix=()):
    """Every place in a JSON document, outermost first."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@st.composite
def restructured(draw, doc):
    """``doc`` with one to three places replaced by other JSON, emptied, wrapped in a list, or deleted."""
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "wrap", "empty list", "empty object"]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        last, old = path[-1], parent[path[-1]]
        if action == "delete":
            del parent[last]
        else:
            new = {"replace": None, "wrap": [old], "empty list": [], "empty object": {}}[action]
            parent[last] = draw(json_values) if action == "replace" else new
    return doc


@given(data=st.data())
@settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_any_restructured_signed_manifest_opens_or_is_a_bundle_error(
    signed_bundle, keys, trusted, tmp_path_factory, data
):
    members = members_of(signed_bundle)
    doc = data.draw(restructured(json.loads(members.pop(MANIFEST))))
    del members[SIGNATURE]
    bundle = signed(tmp_path_factory.mktemp("fuzz") / "f.edgebundle", members, doc, keys[0])
    try:
        model = load(bundle, LoadOptions(trusted_keys=trusted, warmup=0))
    except BundleError as error:  # the one exception a manifest may cause; anything else fails the test
        message = str(error)
        event("refused", type(error).__name__)
    else:
        message = ""
        event("opened")
        assert model.self_test is not None
        assert model.self_test.passed
    assert "\n" not in message
