"""Trusted keys: what a device accepts as a key, and what it says about everything else."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgekit_runtime.errors import ConfigError, SignatureError
from edgekit_runtime.signing import Signature, load_public_key, load_trusted_keys, parse_signature


def test_a_public_key_loads_with_a_stable_id(keys):
    first, second = load_public_key(keys[1]), load_public_key(keys[1])
    assert first.key_id == second.key_id
    assert len(first.key_id) == 16


def test_a_folder_of_keys_loads_every_pub(keys, tmp_path):
    (tmp_path / "a.pub").write_bytes(keys[1].read_bytes())
    assert [k.key_id for k in load_trusted_keys([tmp_path])] == [load_public_key(keys[1]).key_id]
    with pytest.raises(ConfigError, match=r"holds no \.pub file"):
        load_trusted_keys([tmp_path / "a.pub", tmp_path.parent])  # a folder without keys


def test_a_private_key_given_as_trusted_is_refused_with_advice(keys):
    with pytest.raises(ConfigError, match=r"is a private key: give the device the \.pub"):
        load_public_key(keys[0])


def test_a_non_ed25519_key_is_refused(tmp_path):
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    path = tmp_path / "ec.pub"
    path.write_bytes(pem)
    with pytest.raises(ConfigError, match="not Ed25519"):
        load_public_key(path)


@pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), (b"hello", "not a PEM public key")])
def test_missing_or_garbage_keys_are_refused(tmp_path, content, message):
    path = tmp_path / "k.pub"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_public_key(path)


def test_signature_documents_round_trip_and_bad_ones_are_refused():
    sig = Signature("0123456789abcdef", bytes(range(64)))
    assert parse_signature(sig.to_bytes()) == sig
    with pytest.raises(SignatureError, match="uses 'rsa'"):
        parse_signature(sig.to_bytes().replace(b"ed25519", b"rsa"))
    with pytest.raises(SignatureError, match="malformed"):
        parse_signature(b'{"algorithm": "ed25519", "key_id": "x", "signature": "AAAA"}')
