"""The device-side verifier: a good bundle opens; each kind of damage or tampering is refused by name."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest

from edgekit.bundle.archive import archive_bytes
from edgekit.bundle.signing import generate_keypair
from edgekit_runtime.bundle import GOLDEN, MANIFEST, REFERENCE, SIGNATURE, Limits, open_bundle
from edgekit_runtime.errors import BundleError, SignatureError
from edgekit_runtime.signing import load_public_key

from .tamper import flip, members_of, write_zip

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
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys; from edgekit_runtime.bundle import open_bundle; "
        f"open_bundle({str(signed_bundle)!r}); "
        "print(sorted(m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
