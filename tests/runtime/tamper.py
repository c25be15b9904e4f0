"""Ways to damage a bundle on purpose, shared by the verifier's, the loader's and the server's tests."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np

from edgekit_runtime.bundle_format import GOLDEN, MANIFEST, SIGNATURE


def members_of(path):
    with zipfile.ZipFile(path) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist()}


def write_zip(path, members):
    """Write members as given: names unchecked, CRCs correct (so only our hashes can catch a change)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def tampered(bundle, path):
    members = members_of(bundle)
    members["model.onnx"] = flip(members["model.onnx"], 100)
    return write_zip(path, members)


def unsigned(bundle, path):
    members = members_of(bundle)
    del members[SIGNATURE]
    return write_zip(path, members)


def re_pinned_with_other_golden_outputs(bundle, path):
    """Golden outputs edited and the manifest's hash updated to match: only the self-test can tell."""
    members = members_of(bundle)
    with np.load(io.BytesIO(members[GOLDEN])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["outputs/probabilities"] = arrays["outputs/probabilities"][::-1].copy()  # someone else's answers
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    members[GOLDEN] = buf.getvalue()
    manifest = json.loads(members[MANIFEST])
    for entry in manifest["files"]:
        if entry["path"] == GOLDEN:
            entry.update(sha256=hashlib.sha256(members[GOLDEN]).hexdigest(), size=len(members[GOLDEN]))
    members[MANIFEST] = json.dumps(manifest).encode()
    del members[SIGNATURE]  # the signature would catch the edit first; this checks the self-test
    return write_zip(path, members)
