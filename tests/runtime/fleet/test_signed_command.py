"""Signed fleet commands: what the operator seals, and every way the device's gate refuses one."""

from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit_runtime.errors import CommandError, ConfigError
from edgekit_runtime.fleet.command_journal import CommandJournal
from edgekit_runtime.fleet.signed_command import DOMAIN, SCHEMA, CommandGate, CommandPolicy, seal
from edgekit_runtime.signing import TrustedKey, key_id

NOW = 1_800_000_000.0


def trusted(key: Ed25519PrivateKey) -> TrustedKey:
    public = key.public_key()
    return TrustedKey(key_id(public), public, "test")


@pytest.fixture
def owner() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def gate(tmp_path, owner):
    clock = {"now": NOW}
    journal = CommandJournal(tmp_path, clock=lambda: clock["now"])
    made = CommandGate([trusted(owner)], fleet="lab", journal=journal, clock=lambda: clock["now"])
    made.clock_value = clock  # type: ignore[attr-defined]
    return made


def sealed(key, body=None, *, fleet="lab", target="pi-1", now=NOW, nonce=None) -> bytes:
    return seal(body or {"id": "c1", "command": "status"}, key, fleet=fleet, target=target, now=now, nonce=nonce)


def test_a_sealed_command_opens_to_its_body_bound_to_fleet_target_time_and_nonce(gate, owner):
    body = gate.open(sealed(owner, {"id": "c1", "command": "rollback"}), "pi-1")
    assert body["id"] == "c1"
    assert body["command"] == "rollback"
    assert (body["fleet"], body["target"], body["issued_at"]) == ("lab", "pi-1", NOW)
    assert len(body["nonce"]) == 32


def test_the_signature_covers_a_domain_prefix_so_a_bare_signature_over_the_body_is_refused(gate, owner):
    envelope = orjson.loads(sealed(owner))
    body = envelope["body"].encode()
    envelope["signature"] = base64.b64encode(owner.sign(body)).decode()  # what a manifest-style signature would be
    with pytest.raises(CommandError, match="does not match its body"):
        gate.open(orjson.dumps(envelope), "pi-1")
    assert DOMAIN.endswith(b"\n")


def test_an_unsigned_command_is_refused_saying_how_to_sign_and_naming_its_id(gate):
    with pytest.raises(CommandError, match="commands must be signed") as caught:
        gate.open(orjson.dumps({"id": "c9", "command": "deploy", "source": "http://x/b"}), "pi-1")
    assert caught.value.command_id == "c9"
    assert "--sign-key" in str(caught.value)


def test_a_command_signed_by_an_unknown_key_is_refused(gate):
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(CommandError, match="does not trust") as caught:
        gate.open(sealed(stranger), "pi-1")
    assert caught.value.command_id == "c1"


def test_a_body_changed_after_signing_is_refused(gate, owner):
    envelope = orjson.loads(sealed(owner, {"id": "c1", "command": "status"}))
    envelope["body"] = envelope["body"].replace("status", "rollback")
    with pytest.raises(CommandError, match="changed after signing"):
        gate.open(orjson.dumps(envelope), "pi-1")


def test_a_replayed_command_runs_once(gate, owner):
    payload = sealed(owner)
    gate.open(payload, "pi-1")
    with pytest.raises(CommandError, match="taken before"):
        gate.open(payload, "pi-1")


def test_the_journal_outlives_a_restart_so_a_retained_command_does_not_run_again(tmp_path, owner):
    payload = sealed(owner, target="@all")
    first = CommandGate(
        [trusted(owner)], fleet="lab", journal=CommandJournal(tmp_path, clock=lambda: NOW), clock=lambda: NOW
    )
    first.open(payload, "@all")
    again = CommandGate(
        [trusted(owner)], fleet="lab", journal=CommandJournal(tmp_path, clock=lambda: NOW), clock=lambda: NOW
    )
    with pytest.raises(CommandError, match="taken before"):
        again.open(payload, "@all")


@pytest.mark.parametrize(
    ("issued", "words"),
    [(NOW - 601, "expired"), (NOW - 3600 * 24, "expired"), (NOW + 121, "in the future")],
)
def test_stale_and_future_commands_are_refused(gate, owner, issued, words):
    with pytest.raises(CommandError, match=words):
        gate.open(sealed(owner, now=issued), "pi-1")


def test_a_command_just_within_its_age_is_taken(gate, owner):
    assert gate.open(sealed(owner, now=NOW - 599), "pi-1")["id"] == "c1"


@pytest.mark.parametrize(
    ("fleet", "target", "arrived_on"),
    [("lab", "pi-2", "pi-1"), ("shop", "pi-1", "pi-1"), ("lab", "@all", "pi-1"), ("lab", "pi-1", "@all")],
)
def test_a_command_moved_to_another_device_group_or_fleet_is_refused(gate, owner, fleet, target, arrived_on):
    with pytest.raises(CommandError, match="cannot be moved"):
        gate.open(sealed(owner, fleet=fleet, target=target), arrived_on)


def test_a_command_over_the_size_limit_is_refused_unread(tmp_path, owner):
    small = CommandGate(
        [trusted(owner)],
        fleet="lab",
        journal=CommandJournal(tmp_path, clock=lambda: NOW),
        policy=CommandPolicy(max_bytes=2048),
        clock=lambda: NOW,
    )
    with pytest.raises(CommandError, match="over the 2048-byte limit"):
        small.open(sealed(owner, {"id": "c1", "command": "status", "pad": "x" * 4096}), "pi-1")


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        orjson.dumps({"schema": SCHEMA}),
        orjson.dumps({"schema": SCHEMA, "body": 1, "key_id": "k", "signature": "s"}),
        orjson.dumps({"schema": SCHEMA, "body": "{}", "key_id": "k", "signature": "!!"}),
        orjson.dumps({"schema": SCHEMA, "body": "{}", "key_id": "k", "signature": "x" * 500}),
    ],
)
def test_malformed_envelopes_are_refused_with_a_reason(gate, payload):
    with pytest.raises(CommandError):
        gate.open(payload, "pi-1")


def test_a_signed_body_without_id_time_or_nonce_is_refused(gate, owner):
    def raw(body: dict) -> bytes:
        text = orjson.dumps(body)
        return orjson.dumps(
            {
                "schema": SCHEMA,
                "body": text.decode(),
                "key_id": key_id(owner.public_key()),
                "signature": base64.b64encode(owner.sign(DOMAIN + text)).decode(),
            }
        )

    base = {"id": "c1", "command": "status", "fleet": "lab", "target": "pi-1", "issued_at": NOW, "nonce": "a" * 32}
    assert gate.open(raw(base), "pi-1")["id"] == "c1"
    for broken, words in [
        ({**base, "id": "x" * 200}, "no usable id"),
        ({**base, "issued_at": "now"}, "no issued_at"),
        ({**base, "issued_at": True}, "no issued_at"),
        ({**base, "nonce": "short"}, "no nonce"),
    ]:
        with pytest.raises(CommandError, match=words):
            gate.open(raw(broken), "pi-1")


def test_a_gate_needs_keys_and_a_sane_policy(tmp_path):
    with pytest.raises(ConfigError, match="--trust"):
        CommandGate([], fleet="lab", journal=CommandJournal(tmp_path))
    with pytest.raises(ConfigError, match="--command-max-age"):
        CommandPolicy(max_age=0)
